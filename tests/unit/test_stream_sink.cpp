// The streaming sink drives real writers from ascending pieces; qcow2 output reads back exactly.
#include <hypersdk/disk.hpp>

#include "convert/stream_sink.hpp"
#include "core/codec.hpp"
#include "format/layer.hpp"
#include "io/atomic_output.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace hypersdk;

namespace {

std::vector<std::byte> make_expected(std::uint64_t size, std::vector<std::pair<std::uint64_t, std::uint64_t>> &pieces) {
    std::vector<std::byte> disk(size, std::byte{0});
    std::mt19937_64 rng(7);
    std::uint64_t pos = 0;
    while (pos < size) {
        const std::uint64_t len = std::min<std::uint64_t>(size - pos, 512 * (1 + rng() % 300));
        if (rng() % 3 != 0) {  // a piece of data, else a gap
            for (std::uint64_t i = 0; i < len; ++i) disk[pos + i] = static_cast<std::byte>(rng() & 0xff);
            pieces.emplace_back(pos, len);
        }
        pos += len;
    }
    return disk;
}

std::vector<std::byte> zlib_of(std::span<const std::byte> data) {
    std::vector<std::byte> out(core::codec::compress_bound(core::codec::Kind::zlib, data.size()));
    auto n = core::codec::compress(core::codec::Kind::zlib, 4, data, out);
    REQUIRE(n);
    out.resize(n.value());
    return out;
}

// deflated: the pieces arrive zlib-compressed (streamOptimized grains) and are inflated by the
// sink's workers; some cross a 2 MiB unit boundary (inflated by the caller instead).
void round_trip(const std::string &format, unsigned threads, bool deflated = false) {
    const std::uint64_t size = (9ULL << 20) + 4096 * 3;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pieces;
    const auto expected = make_expected(size, pieces);
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/stream." + format;
    ::unlink(path.c_str());
    {
        io::AtomicOutputSet outputs;
        format::CreateRequest req{path, size, {}, false, &outputs};
        auto writer = format::find_driver(format)->create(req);
        REQUIRE(writer);
        pipeline::StreamSink sink(*writer.value(), size, threads);
        for (auto [off, len] : pieces) {
            const auto piece = std::span(expected).subspan(off, len);
            if (deflated)
                REQUIRE(sink.write_deflated(off, len, zlib_of(piece), off));
            else
                REQUIRE(sink.write(off, piece));
        }
        REQUIRE(sink.finish());
        CHECK(sink.stats().bytes_read > 0);
        REQUIRE(writer.value()->finish());
        REQUIRE(outputs.commit());
    }
    OpenOptions o;
    o.format = format;
    auto img = open_image(path, o);
    REQUIRE(img);
    REQUIRE(img.value()->virtual_size() == size);
    std::vector<std::byte> got(size);
    REQUIRE(img.value()->read(0, got));
    CHECK(got == expected);
    ::unlink(path.c_str());
}

}  // namespace

TEST_CASE("stream sink: raw and qcow2 from ascending pieces with gaps") {
    round_trip("raw", 1);
    round_trip("qcow2", 2);
}

TEST_CASE("stream sink: compressed pieces are inflated by the workers, gaps still read as zeros") {
    round_trip("raw", 2, true);
    round_trip("qcow2", 1, true);
}

TEST_CASE("stream sink: a compressed piece that does not inflate to its length fails naming it") {
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/stream-bad-grain.raw";
    io::AtomicOutputSet outputs;
    format::CreateRequest req{path, 4 << 20, {}, false, &outputs};
    auto writer = format::find_driver("raw")->create(req);
    REQUIRE(writer);
    pipeline::StreamSink sink(*writer.value(), 4 << 20, 1);
    sink.set_stream_name("stream for 'x'");
    std::vector<std::byte> grain(65536, std::byte{7});
    REQUIRE(sink.write_deflated(0, grain.size(), zlib_of(std::span(grain).first(1000)), 0x200));  // inflates short
    auto garbage = std::vector<std::byte>(300, std::byte{0x55});
    REQUIRE(sink.write_deflated(65536, grain.size(), garbage, 0x9000));
    auto done = sink.finish();
    REQUIRE_FALSE(done);
    CHECK(done.error().code == Errc::corrupt_image);
    CHECK(done.error().message.find("stream for 'x': grain at offset 0x200") != std::string::npos);
}

TEST_CASE("stream sink: pieces must ascend and stay inside the disk") {
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/stream-bad.raw";
    io::AtomicOutputSet outputs;
    format::CreateRequest req{path, 1 << 20, {}, false, &outputs};
    auto writer = format::find_driver("raw")->create(req);
    REQUIRE(writer);
    pipeline::StreamSink sink(*writer.value(), 1 << 20, 1);
    std::vector<std::byte> b(4096, std::byte{1});
    REQUIRE(sink.write(8192, b));
    auto back = sink.write(0, b);
    REQUIRE_FALSE(back);
    CHECK(back.error().code == Errc::invalid_argument);
    auto past = sink.write((1 << 20) - 100, b);
    REQUIRE_FALSE(past);
    CHECK(past.error().code == Errc::corrupt_image);
}
