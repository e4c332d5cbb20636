// ChangedExtents algebra, the local diff and the delta writer on small generated images.
#include "convert/prefetch.hpp"
#include "scratch.hpp"

#include <hypersdk/cbt.hpp>
#include <hypersdk/convert.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>

using namespace hypersdk;
using hypersdk::test::pattern;

namespace {

ChangedExtents runs(std::initializer_list<ChangedRun> r) { return ChangedExtents::from_runs(std::vector<ChangedRun>(r)); }

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;

}  // namespace

TEST_CASE("changed extents: runs are sorted and merged however they arrive") {
    ChangedExtents e;
    e.add(100, 10);
    e.add(110, 5);  // touching: merged
    e.add(200, 10);
    e.add(50, 60);  // before and overlapping: normalized
    e.add(0, 0);
    CHECK(e.runs() == std::vector<ChangedRun>{{50, 65}, {200, 10}});
    CHECK(e.bytes() == 75);
    CHECK(e.covers(50));
    CHECK(e.covers(114));
    CHECK_FALSE(e.covers(115));
    CHECK_FALSE(e.covers(49));
    CHECK(runs({{10, 5}, {0, 3}, {2, 4}}).runs() == std::vector<ChangedRun>{{0, 6}, {10, 5}});
}

TEST_CASE("changed extents: union, intersection, clipping and alignment") {
    const auto a = runs({{0, 10}, {20, 10}, {100, 50}});
    const auto b = runs({{5, 20}, {120, 100}});
    CHECK(a.united(b).runs() == std::vector<ChangedRun>{{0, 30}, {100, 120}});
    CHECK(a.intersected(b).runs() == std::vector<ChangedRun>{{5, 5}, {20, 5}, {120, 30}});
    CHECK(b.intersected(a) == a.intersected(b));
    CHECK(a.intersected(ChangedExtents{}).empty());
    CHECK(a.clipped(5, 25).runs() == std::vector<ChangedRun>{{5, 5}, {20, 5}});
    CHECK(a.aligned(64, 1000).runs() == std::vector<ChangedRun>{{0, 192}});  // touching runs merge
    CHECK(runs({{0, 10}, {200, 10}}).aligned(64, 1000).runs() == std::vector<ChangedRun>{{0, 64}, {192, 64}});
    CHECK(a.aligned(64, 130).runs() == std::vector<ChangedRun>{{0, 130}});
    CHECK(a.aligned(64, 1000).bytes() == 192);
}

TEST_CASE("local diff finds exactly the changed blocks, also where one side is a hole") {
    const std::uint64_t size = 20 * MiB + 512;  // not a whole number of blocks
    auto base_bytes = pattern(size, 1);
    std::fill(base_bytes.begin() + 9 * MiB, base_bytes.begin() + 11 * MiB, std::byte{0});
    auto next_bytes = base_bytes;
    next_bytes[3 * MiB + 5] ^= std::byte{1};                                 // one byte: its 64 KiB block
    std::fill(next_bytes.begin() + 5 * MiB, next_bytes.begin() + 5 * MiB + 128 * KiB, std::byte{0});  // zeroed
    next_bytes[10 * MiB] = std::byte{7};                                     // data where base is zero
    next_bytes[size - 1] ^= std::byte{0xff};                                 // the short last block
    const auto base_path = test::write_file("cbt-diff-base.raw", base_bytes);
    const auto next_path = test::write_file("cbt-diff-next.raw", next_bytes);
    OpenOptions raw;
    raw.format = "raw";
    auto base = open_image(base_path, raw);
    auto next = open_image(next_path, raw);
    REQUIRE(base);
    REQUIRE(next);
    DiffOptions o;
    o.threads = 2;
    auto d = diff_images(*base.value(), *next.value(), o);
    REQUIRE(d);
    CHECK(d.value().runs() == std::vector<ChangedRun>{{3 * MiB, 64 * KiB}, {5 * MiB, 128 * KiB}, {10 * MiB, 64 * KiB}, {20 * MiB, 512}});

    auto same = diff_images(*base.value(), *base.value(), o);
    REQUIRE(same);
    CHECK(same.value().empty());

    const auto short_path = test::write_file("cbt-diff-short.raw", pattern(MiB, 3));
    auto shorter = open_image(short_path, raw);
    REQUIRE(shorter);
    auto refused = diff_images(*base.value(), *shorter.value(), o);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::invalid_argument);
}

TEST_CASE("a delta holds only the changed clusters and reads as the new image over its backing") {
    const std::uint64_t size = 8 * MiB;
    auto v1 = pattern(size, 11);
    auto v2 = v1;
    for (std::uint64_t i = 0; i < 4096; ++i) v2[2 * MiB + i] = std::byte{0x5a};
    std::fill(v2.begin() + 6 * MiB, v2.begin() + 6 * MiB + 64 * KiB, std::byte{0});  // zeros over backing data
    const auto v1_raw = test::write_file("cbt-delta-v1.raw", v1);
    const auto v2_raw = test::write_file("cbt-delta-v2.raw", v2);
    OpenOptions raw;
    raw.format = "raw";
    // The base link: v1 as qcow2.
    ConvertOptions co;
    co.output_format = "qcow2";
    const auto base_link = test::work("cbt-delta-base.qcow2");
    REQUIRE(convert(v1_raw, raw, base_link, co));

    auto next = open_image(v2_raw, raw);
    REQUIRE(next);
    const auto changed = runs({{2 * MiB, 4096}, {6 * MiB, 64 * KiB}});
    DeltaOptions dopt;
    dopt.backing_file = "cbt-delta-base.qcow2";
    dopt.backing_format = "qcow2";
    dopt.overwrite = true;
    const auto link = test::work("cbt-delta-link.qcow2");
    auto stats = write_delta(*next.value(), changed, link, dopt);
    REQUIRE(stats);
    CHECK(stats.value().changed_bytes == 4096 + 64 * KiB);
    CHECK(stats.value().bytes_read <= 2 * 64 * KiB);  // the changed runs widened to clusters, nothing else
    CHECK(stats.value().output_size < 1 * MiB);

    auto opened = open_image(link);
    REQUIRE(opened);
    CHECK(opened.value()->chain_info().size() == 2);
    CHECK(opened.value()->chain_info().front().backing_filename == "cbt-delta-base.qcow2");
    CHECK(opened.value()->chain_info().front().backing_format == "qcow2");
    auto v2_image = open_image(v2_raw, raw);
    REQUIRE(v2_image);
    auto same = compare(*opened.value(), *v2_image.value());
    REQUIRE(same);
    CHECK(same.value().identical);

    // The link's own clusters: only around the changes.
    OpenOptions top_only;
    top_only.open_backing = false;
    auto top = open_image(link, top_only);
    REQUIRE(top);
    auto map = top.value()->block_status(0, size);
    REQUIRE(map);
    std::uint64_t allocated = 0;
    for (const auto &e : map.value())
        if (e.kind != ExtentKind::hole) allocated += e.length;
    CHECK(allocated == 2 * 64 * KiB);
}

TEST_CASE("a delta refuses a backing file of another size and leaves no output") {
    const auto small_raw = test::write_file("cbt-delta-small.raw", pattern(MiB, 21));
    const auto big_raw = test::write_file("cbt-delta-big.raw", pattern(2 * MiB, 22));
    OpenOptions raw;
    raw.format = "raw";
    auto big = open_image(big_raw, raw);
    REQUIRE(big);
    DeltaOptions dopt;
    dopt.backing_file = "cbt-delta-small.raw";
    dopt.backing_format = "raw";
    const auto link = test::work("cbt-delta-mismatch.qcow2");
    auto r = write_delta(*big.value(), runs({{0, 4096}}), link, dopt);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);
    CHECK(r.error().message.find("size of its base") != std::string::npos);
    CHECK_FALSE(test::exists(link));
    (void)small_raw;
}

namespace {

// A device whose reads wait until `want` of them are in progress at once (or a second passes),
// recording the most it saw: the prefetcher's concurrency, shown without timing anything.
class GatheringDevice final : public BlockDevice {
public:
    GatheringDevice(std::uint64_t size, unsigned want) : size_(size), want_(want) {}
    std::uint64_t virtual_size() const noexcept override { return size_; }
    Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override {
        return std::vector<Extent>{{offset, length, ExtentKind::data, 0, no_host_offset}};
    }
    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override {
        std::unique_lock lock(m_);
        ++now_;
        peak_ = std::max(peak_, now_);
        cv_.notify_all();
        cv_.wait_for(lock, std::chrono::seconds(1), [&] { return now_ >= want_ || released_; });
        released_ = released_ || now_ >= want_;
        --now_;
        for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::byte>((offset + i) * 7);
        return success();
    }
    unsigned peak() const {
        std::lock_guard lock(m_);
        return peak_;
    }

private:
    std::uint64_t size_;
    unsigned want_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    unsigned now_ = 0, peak_ = 0;
    bool released_ = false;
};

}  // namespace

TEST_CASE("changed ranges are read ahead with the asked number of reads in flight, and read back exactly") {
    GatheringDevice dev(64 * MiB, 8);
    ChangedExtents plan;
    for (std::uint64_t i = 0; i < 40; ++i) plan.add(i * MiB + 64 * KiB, 64 * KiB);  // scattered, one piece each
    pipeline::PrefetchingDevice prefetch(dev, plan, 8);
    std::vector<std::byte> buf(64 * KiB);
    for (const auto &r : plan.runs()) {
        REQUIRE(prefetch.read(r.offset, buf));
        CHECK(buf[5] == static_cast<std::byte>((r.offset + 5) * 7));
    }
    // Outside the plan: straight from the device.
    REQUIRE(prefetch.read(0, std::span(buf).first(4096)));
    CHECK(buf[3] == static_cast<std::byte>(3 * 7));
    CHECK(prefetch.peak_in_flight() == 8);
    CHECK(dev.peak() >= 8);
}
