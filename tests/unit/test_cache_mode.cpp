// Output cache modes (qemu-img's -t names): how each maps onto direct I/O and flushing, and that
// every mode writes the same image.
#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include <doctest/doctest.h>

#include <unistd.h>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;

TEST_CASE("cache mode names map onto direct I/O and flushing") {
    ConvertOptions o;
    CHECK(o.direct_io);
    CHECK(o.flush);
    REQUIRE(set_cache_mode(o, "unsafe"));
    CHECK_FALSE(o.direct_io);
    CHECK_FALSE(o.flush);
    REQUIRE(set_cache_mode(o, "writeback"));
    CHECK_FALSE(o.direct_io);
    CHECK(o.flush);
    REQUIRE(set_cache_mode(o, "none"));
    CHECK(o.direct_io);
    CHECK(o.flush);
    for (const char *bad : {"", "None", "directsync", "writethrough", "unsafe "}) {
        ConvertOptions before;
        before.direct_io = false;
        auto r = set_cache_mode(before, bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::invalid_argument);
        CHECK(r.error().message.find("cache mode") != std::string::npos);
        CHECK_FALSE(before.direct_io);  // a refused name changes nothing
    }
}

TEST_CASE("every cache mode writes the same qcow2 and leaves no temporary") {
    // 3 MiB of a pattern with a hole and a zero run, so zero detection and direct I/O both matter.
    std::vector<std::byte> content(3u << 20);
    for (std::size_t i = 0; i < (1u << 20); ++i) content[i] = static_cast<std::byte>('a' + i % 23);
    for (std::size_t i = (2u << 20) + 4096; i < content.size(); ++i) content[i] = static_cast<std::byte>(i * 7 % 251);
    const auto src = write_file("cache-src.raw", content);
    OpenOptions raw;
    raw.format = "raw";
    for (const char *mode : {"none", "writeback", "unsafe"}) {
        CAPTURE(mode);
        const auto dst = work(std::string("cache-") + mode + ".qcow2");
        ::unlink(dst.c_str());
        ConvertOptions o;
        o.output_format = "qcow2";
        REQUIRE(set_cache_mode(o, mode));
        REQUIRE(convert(src, raw, dst, o));
        CHECK(leftover_temporaries(std::string("cache-") + mode) == 0);
        auto a = open_image(src, raw);
        auto b = open_image(dst, OpenOptions{});
        REQUIRE(a);
        REQUIRE(b);
        auto same = compare(*a.value(), *b.value());
        REQUIRE(same);
        CHECK(same.value().identical);
        ::unlink(dst.c_str());
    }
    ::unlink(src.c_str());
}
