// ImageWriter: every writable format from ascending pieces; raw in any order; misuse refused;
// nothing left behind without close().
#include <hypersdk/disk.hpp>
#include <hypersdk/writer.hpp>

#include <doctest/doctest.h>

#include <dirent.h>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;

namespace {

struct Disk {
    std::vector<std::byte> bytes;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pieces;
};

Disk make_disk(std::uint64_t size) {
    Disk d;
    d.bytes.assign(size, std::byte{0});
    std::mt19937_64 rng(11);
    for (std::uint64_t pos = 0; pos < size;) {
        const std::uint64_t len = std::min<std::uint64_t>(size - pos, 1000 + rng() % 200000);
        if (rng() % 2) {
            for (std::uint64_t i = 0; i < len; ++i) d.bytes[pos + i] = static_cast<std::byte>((rng() % 5) ? 'a' + i % 7 : rng());
            d.pieces.emplace_back(pos, len);
        }
        pos += len;
    }
    return d;
}

void check_reads_back(const std::string &path, const std::string &format, const Disk &d) {
    OpenOptions o;
    o.format = format;
    auto img = open_image(path, o);
    REQUIRE(img);
    REQUIRE(img.value()->virtual_size() >= d.bytes.size());
    std::vector<std::byte> got(d.bytes.size());
    REQUIRE(img.value()->read(0, got));
    CHECK(got == d.bytes);
}

}  // namespace

TEST_CASE("image writer: every format from ascending pieces") {
    const std::uint64_t size = 6 * 1024 * 1024 + 12345 * 512 / 512 * 512;
    const Disk d = make_disk(size);
    for (const char *fmt : {"raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi"}) {
        CAPTURE(fmt);
        const auto path = work(std::string("iw.") + fmt);
        ::unlink(path.c_str());
        ImageWriterOptions o;
        o.format = fmt;
        o.compress = std::string(fmt) == "qcow2";
        auto w = ImageWriter::create(path, size, o);
        REQUIRE(w);
        for (auto [off, len] : d.pieces) REQUIRE(w.value()->write(off, std::span(d.bytes).subspan(off, len)));
        CHECK_FALSE(exists(path));  // not before close()
        REQUIRE(w.value()->close());
        check_reads_back(path, fmt, d);
        ::unlink(path.c_str());
    }
}

TEST_CASE("image writer: raw takes pieces in any order; others must ascend") {
    const Disk d = make_disk(3 * 1024 * 1024);
    const auto path = work("iw-any.raw");
    ::unlink(path.c_str());
    ImageWriterOptions o;
    o.format = "raw";
    auto w = ImageWriter::create(path, d.bytes.size(), o);
    REQUIRE(w);
    CHECK(w.value()->random_access());
    for (auto it = d.pieces.rbegin(); it != d.pieces.rend(); ++it)
        REQUIRE(w.value()->write(it->first, std::span(d.bytes).subspan(it->first, it->second)));
    REQUIRE(w.value()->close());
    check_reads_back(path, "raw", d);

    o.format = "qcow2";
    auto q = ImageWriter::create(work("iw-order.qcow2"), d.bytes.size(), o);
    REQUIRE(q);
    CHECK_FALSE(q.value()->random_access());
    std::vector<std::byte> block(4096, std::byte{1});
    REQUIRE(q.value()->write(8192, block));
    auto back = q.value()->write(0, block);
    REQUIRE_FALSE(back);
    CHECK(back.error().code == Errc::invalid_argument);
}

TEST_CASE("image writer: bad requests and abandoned images") {
    ImageWriterOptions o;
    o.format = "floppy";
    CHECK(ImageWriter::create(work("x.img"), 1 << 20, o).error().code == Errc::invalid_argument);
    o.format = "qcow2";
    o.format_options = {{"no_such", "1"}};
    CHECK(ImageWriter::create(work("x.img"), 1 << 20, o).error().code == Errc::invalid_argument);
    o.format_options.clear();
    CHECK(ImageWriter::create(work("x.img"), 0, o).error().code == Errc::invalid_argument);
    const auto path = work("iw-abandoned.vhdx");
    ::unlink(path.c_str());
    {
        o.format = "vhdx";
        auto w = ImageWriter::create(path, 1 << 24, o);
        REQUIRE(w);
        std::vector<std::byte> data(65536, std::byte{7});
        REQUIRE(w.value()->write(0, data));
        // destroyed without close()
    }
    CHECK_FALSE(exists(path));
    int temporaries = 0;
    DIR *dir = ::opendir(HSDK_TEST_WORK_DIR);
    while (auto *e = ::readdir(dir))
        if (std::string(e->d_name).rfind(".iw-abandoned", 0) == 0) ++temporaries;
    ::closedir(dir);
    CHECK(temporaries == 0);
}
