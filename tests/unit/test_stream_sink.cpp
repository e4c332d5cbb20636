// The streaming sink drives real writers from ascending pieces; qcow2 output reads back exactly.
#include <hypersdk/disk.hpp>

#include "convert/stream_sink.hpp"
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

void round_trip(const std::string &format, unsigned threads) {
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
        for (auto [off, len] : pieces) REQUIRE(sink.write(off, std::span(expected).subspan(off, len)));
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
