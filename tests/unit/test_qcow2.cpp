// Hostile qcow2 images built byte by byte: every broken header field and table must give a clear
// error of the right kind, never a crash, a hang or a giant allocation.
#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include "core/codec.hpp"
#include "core/endian.hpp"

#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;

namespace {

constexpr std::uint64_t cs = 4096;  // cluster_bits 12
constexpr std::uint64_t oflag_copied = 1ULL << 63;

// A small valid v3 image: header | L1 | refcount table | refcount block | L2 | one data cluster.
// Guest cluster 0 holds `pattern`; the rest of the 1 MiB disk is unallocated.
struct Builder {
    std::vector<std::byte> f = std::vector<std::byte>(6 * cs);

    Builder() {
        be32(0, 0x514649fb);
        be32(4, 3);
        be32(20, 12);
        be64(24, 1 << 20);
        be32(36, 1);       // l1_size
        be64(40, 1 * cs);  // l1_table_offset
        be64(48, 2 * cs);  // refcount_table_offset
        be32(56, 1);       // refcount_table_clusters
        be32(96, 4);       // refcount_order
        be32(100, 112);    // header_length
        be64(1 * cs, (4 * cs) | oflag_copied);
        be64(2 * cs, 3 * cs);
        for (int i = 0; i < 6; ++i) be16(3 * cs + 2 * static_cast<std::uint64_t>(i), 1);
        be64(4 * cs, (5 * cs) | oflag_copied);
        for (std::uint64_t i = 0; i < cs; ++i) f[5 * cs + i] = pattern(i);
    }

    static std::byte pattern(std::uint64_t i) { return static_cast<std::byte>((i * 7 + 3) & 0xff); }

    void be16(std::uint64_t at, std::uint16_t v) { store_be(f.data() + at, v); }
    void be32(std::uint64_t at, std::uint32_t v) { store_be(f.data() + at, v); }
    void be64(std::uint64_t at, std::uint64_t v) { store_be(f.data() + at, v); }
    void l2(std::uint64_t index, std::uint64_t entry) { be64(4 * cs + index * 8, entry); }
    void text(std::uint64_t at, const std::string &s) { std::memcpy(f.data() + at, s.data(), s.size()); }
    // A header extension at `at` (inside the header cluster, after the 112-byte header).
    std::uint64_t extension(std::uint64_t at, std::uint32_t type, const std::string &data) {
        be32(at, type);
        be32(at + 4, static_cast<std::uint32_t>(data.size()));
        text(at + 8, data);
        return at + 8 + ((data.size() + 7) & ~std::size_t{7});
    }

    std::string write(const std::string &name) const {
        const auto path = work(name);
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char *>(f.data()), static_cast<std::streamsize>(f.size()));
        return path;
    }
};

OpenOptions qcow2_options() {
    OpenOptions o;
    o.format = "qcow2";
    return o;
}

Result<std::unique_ptr<Image>> open(const std::string &path, bool allow_external = false) {
    OpenOptions o;
    o.format = "qcow2";
    o.allow_external_files = allow_external;
    return open_image(path, o);
}

// Opens the image and reads the whole disk; returns the first error.
Result<void> open_and_read(const std::string &path) {
    HSDK_TRY(auto img, open(path));
    HSDK_TRY(auto runs, img->block_status(0, img->virtual_size()));
    (void)runs;
    std::vector<std::byte> buf(static_cast<std::size_t>(img->virtual_size()));
    return img->read(0, buf);
}

bool has(const Error &e, const std::string &needle) { return e.message.find(needle) != std::string::npos; }

#define REQUIRE_ERROR(result, errc, needle)                                                        \
    do {                                                                                           \
        auto &&r_ = (result);                                                                      \
        REQUIRE_FALSE(r_);                                                                         \
        INFO(r_.error().message);                                                                  \
        CHECK(r_.error().code == (errc));                                                          \
        CHECK(has(r_.error(), needle));                                                            \
    } while (0)

}  // namespace

TEST_CASE("qcow2: the built image is valid: reads, maps and checks clean") {
    Builder b;
    const auto path = b.write("q-valid.qcow2");
    auto img = open(path);
    REQUIRE(img);
    auto &dev = *img.value();
    CHECK(dev.virtual_size() == (1u << 20));
    std::vector<std::byte> buf(2 * cs);
    REQUIRE(dev.read(0, buf));
    for (std::uint64_t i = 0; i < cs; ++i) REQUIRE(buf[i] == Builder::pattern(i));
    for (std::uint64_t i = cs; i < 2 * cs; ++i) REQUIRE(buf[i] == std::byte{0});
    auto runs = dev.block_status(0, dev.virtual_size());
    REQUIRE(runs);
    REQUIRE(runs.value().size() == 2);
    CHECK(runs.value()[0].kind == ExtentKind::data);
    CHECK(runs.value()[0].host_offset == 5 * cs);
    CHECK(runs.value()[1].kind == ExtentKind::hole);
    auto report = check_image(path, qcow2_options());
    REQUIRE(report);
    CHECK(report.value().clean);
    CHECK(report.value().allocated_clusters == 1);
    CHECK(report.value().total_clusters == 256);
    CHECK(report.value().image_end_offset == 6 * cs);
}

TEST_CASE("qcow2: L1 table past the end of the file") {
    Builder b;
    b.be64(40, 0x30000);
    REQUIRE_ERROR(open(b.write("q-l1-eof.qcow2")), Errc::corrupt_image, "L1 table beyond end of file (offset 0x30000");
}

TEST_CASE("qcow2: L2 table past the end of the file") {
    Builder b;
    b.be64(1 * cs, 0x64000 | oflag_copied);
    REQUIRE_ERROR(open_and_read(b.write("q-l2-eof.qcow2")), Errc::corrupt_image, "L2 table beyond end of file (offset 0x64000");
}

TEST_CASE("qcow2: L2 table offset not aligned to a cluster") {
    Builder b;
    b.be64(1 * cs, (4 * cs + 512) | oflag_copied);
    REQUIRE_ERROR(open_and_read(b.write("q-l2-align.qcow2")), Errc::corrupt_image, "L2 table offset 0x4200 unaligned");
}

TEST_CASE("qcow2: two L1 entries sharing one L2 table") {
    Builder b;
    b.be64(24, 4ULL << 20);  // 2 L1 entries needed
    b.be32(36, 2);
    b.be64(1 * cs + 8, (4 * cs) | oflag_copied);
    REQUIRE_ERROR(open(b.write("q-l2-shared.qcow2")), Errc::corrupt_image, "referenced by two L1 entries");
}

TEST_CASE("qcow2: L2 entry pointing past the end of the file") {
    Builder b;
    b.l2(1, 0x100000 | oflag_copied);
    REQUIRE_ERROR(open_and_read(b.write("q-data-eof.qcow2")), Errc::corrupt_image, "data cluster beyond end of file (offset 0x100000");
}

TEST_CASE("qcow2: data cluster offset not aligned") {
    Builder b;
    b.l2(0, (5 * cs + 1024) | oflag_copied);
    REQUIRE_ERROR(open_and_read(b.write("q-data-align.qcow2")), Errc::corrupt_image, "data cluster offset 0x5400 unaligned");
}

TEST_CASE("qcow2: compressed cluster with garbage data or a garbage offset") {
    // x = 62 - (12 - 8) = 58: the sector count sits in bits 58..61.
    SUBCASE("garbage stream") {
        Builder b;
        for (std::uint64_t i = 0; i < cs; ++i) b.f[5 * cs + i] = static_cast<std::byte>(0xff - (i & 0x3f));
        b.l2(0, (1ULL << 62) | (3ULL << 58) | (5 * cs));
        REQUIRE_ERROR(open_and_read(b.write("q-comp-garbage.qcow2")), Errc::corrupt_image, "compressed cluster at offset 0x5000");
    }
    SUBCASE("stream too short for a cluster") {
        Builder b;
        std::vector<std::byte> small(100, std::byte{0x41}), packed(1024);
        auto n = core::codec::compress(core::codec::Kind::deflate_raw, 6, small, packed);
        REQUIRE(n);
        std::memcpy(b.f.data() + 5 * cs, packed.data(), n.value());
        b.l2(0, (1ULL << 62) | (5 * cs));
        REQUIRE_ERROR(open_and_read(b.write("q-comp-short.qcow2")), Errc::corrupt_image, "compressed cluster at offset 0x5000");
    }
    SUBCASE("offset past the end of the file") {
        Builder b;
        b.l2(0, (1ULL << 62) | (15ULL << 58) | 0x123456789ULL);
        REQUIRE_ERROR(open_and_read(b.write("q-comp-eof.qcow2")), Errc::corrupt_image, "compressed cluster beyond end of file (offset 0x123456789");
    }
    SUBCASE("a valid stream reads back") {
        Builder b;
        std::vector<std::byte> cluster(cs), packed(2 * cs);
        for (std::uint64_t i = 0; i < cs; ++i) cluster[i] = static_cast<std::byte>(i % 13);
        auto n = core::codec::compress(core::codec::Kind::deflate_raw, 6, cluster, packed);
        REQUIRE(n);
        std::memcpy(b.f.data() + 5 * cs + 100, packed.data(), n.value());
        const std::uint64_t start = 5 * cs + 100, last = start + n.value() - 1;
        b.l2(0, (1ULL << 62) | (((last >> 9) - (start >> 9)) << 58) | start);
        auto img = open(b.write("q-comp-ok.qcow2"));
        REQUIRE(img);
        std::vector<std::byte> buf(cs);
        REQUIRE(img.value()->read(0, buf));
        CHECK(buf == cluster);
        // A partial read decompresses into scratch space.
        std::vector<std::byte> part(100);
        REQUIRE(img.value()->read(1000, part));
        CHECK(std::memcmp(part.data(), cluster.data() + 1000, 100) == 0);
    }
}

TEST_CASE("qcow2: header fields out of range") {
    SUBCASE("cluster_bits 40") {
        Builder b;
        b.be32(20, 40);
        REQUIRE_ERROR(open(b.write("q-cb40.qcow2")), Errc::corrupt_image, "cluster_bits 40");
    }
    SUBCASE("cluster_bits 8") {
        Builder b;
        b.be32(20, 8);
        REQUIRE_ERROR(open(b.write("q-cb8.qcow2")), Errc::corrupt_image, "cluster_bits 8");
    }
    SUBCASE("4 MiB clusters") {
        Builder b;
        b.be32(20, 22);
        REQUIRE_ERROR(open(b.write("q-cb22.qcow2")), Errc::unsupported, "2 MiB");
    }
    SUBCASE("l1_size huge") {
        Builder b;
        b.be32(36, 0x10000000);
        REQUIRE_ERROR(open(b.write("q-l1-huge.qcow2")), Errc::corrupt_image, "larger than the 32 MiB limit");
    }
    SUBCASE("l1_size too small for the virtual size") {
        Builder b;
        b.be64(24, 1ULL << 40);
        REQUIRE_ERROR(open(b.write("q-l1-small.qcow2")), Errc::corrupt_image, "too small for a virtual size");
    }
    SUBCASE("header_length shorter than a v3 header") {
        Builder b;
        b.be32(100, 96);
        REQUIRE_ERROR(open(b.write("q-hlen.qcow2")), Errc::corrupt_image, "header_length 96");
    }
    SUBCASE("header_length beyond the cluster") {
        Builder b;
        b.be32(100, 8192);
        REQUIRE_ERROR(open(b.write("q-hlen2.qcow2")), Errc::corrupt_image, "exceeds the cluster size");
    }
    SUBCASE("refcount_order 7") {
        Builder b;
        b.be32(96, 7);
        REQUIRE_ERROR(open(b.write("q-rorder.qcow2")), Errc::corrupt_image, "refcount_order 7");
    }
    SUBCASE("refcount table past the end of the file") {
        Builder b;
        b.be32(56, 100);
        REQUIRE_ERROR(open(b.write("q-rt-eof.qcow2")), Errc::corrupt_image, "refcount table beyond end of file");
    }
    SUBCASE("refcount table larger than qemu allows") {
        Builder b;
        b.be32(56, 4096);
        REQUIRE_ERROR(open(b.write("q-rt-huge.qcow2")), Errc::corrupt_image, "8 MiB");
    }
    SUBCASE("no refcount table") {
        Builder b;
        b.be32(56, 0);
        REQUIRE_ERROR(open(b.write("q-rt-none.qcow2")), Errc::corrupt_image, "no refcount table");
    }
    SUBCASE("L1 table not aligned") {
        Builder b;
        b.be64(40, cs + 8);
        REQUIRE_ERROR(open(b.write("q-l1-align.qcow2")), Errc::corrupt_image, "L1 table is not aligned");
    }
    SUBCASE("too many snapshots") {
        Builder b;
        b.be32(60, 100000);
        REQUIRE_ERROR(open(b.write("q-snaps.qcow2")), Errc::corrupt_image, "100000 snapshots");
    }
    SUBCASE("snapshot table running past the file") {
        Builder b;
        b.be32(60, 1000);
        b.be64(64, 5 * cs);
        REQUIRE_ERROR(open(b.write("q-snaps-eof.qcow2")), Errc::corrupt_image, "snapshot table");
    }
    SUBCASE("snapshot with absurd extra data") {
        Builder b;
        b.be32(60, 1);
        b.be64(64, 5 * cs);
        b.be32(5 * cs + 36, 0x7fffffff);
        REQUIRE_ERROR(open(b.write("q-snap-extra.qcow2")), Errc::corrupt_image, "extra data");
    }
    SUBCASE("truncated file") {
        Builder b;
        b.f.resize(50);
        REQUIRE_ERROR(open(b.write("q-trunc.qcow2")), Errc::corrupt_image, "too short");
    }
    SUBCASE("version 4") {
        Builder b;
        b.be32(4, 4);
        REQUIRE_ERROR(open(b.write("q-v4.qcow2")), Errc::unsupported, "version 4");
    }
    SUBCASE("qcow version 1") {
        Builder b;
        b.be32(4, 1);
        REQUIRE_ERROR(open(b.write("q-v1.qcow2")), Errc::unsupported, "qcow version 1");
    }
}

TEST_CASE("qcow2: header extensions out of bounds") {
    Builder b;
    b.be32(112, 0xe2792aca);
    b.be32(116, 100000);
    REQUIRE_ERROR(open(b.write("q-ext.qcow2")), Errc::corrupt_image, "header extension 0xe2792aca at offset 0x70 is 100000 bytes long");
}

TEST_CASE("qcow2: backing file references") {
    SUBCASE("name longer than 1023 bytes") {
        Builder b;
        b.be64(8, 0x200);
        b.be32(16, 100000);
        REQUIRE_ERROR(open(b.write("q-bname.qcow2")), Errc::corrupt_image, "backing file name is 100000 bytes long");
    }
    SUBCASE("name past the header cluster") {
        Builder b;
        b.be64(8, cs - 4);
        b.be32(16, 100);
        REQUIRE_ERROR(open(b.write("q-bname2.qcow2")), Errc::corrupt_image, "runs past the header cluster");
    }
    SUBCASE("absolute path refused") {
        Builder b;
        b.be64(8, 0x200);
        b.be32(16, 11);
        b.text(0x200, "/etc/passwd");
        REQUIRE_ERROR(open(b.write("q-babs.qcow2")), Errc::permission_denied, "absolute path");
    }
    SUBCASE("'..' refused") {
        Builder b;
        b.be64(8, 0x200);
        b.be32(16, 10);
        b.text(0x200, "../x.qcow2");
        REQUIRE_ERROR(open(b.write("q-bdotdot.qcow2")), Errc::permission_denied, "'..'");
    }
    SUBCASE("a loop a -> b -> a") {
        Builder a, b;
        a.be64(8, 0x200);
        a.be32(16, 12);
        a.text(0x200, "q-loop-b.img");
        b.be64(8, 0x200);
        b.be32(16, 12);
        b.text(0x200, "q-loop-a.img");
        const auto pa = a.write("q-loop-a.img");
        b.write("q-loop-b.img");
        auto r = open_image(pa);  // probed, as backing files are
        REQUIRE_ERROR(r, Errc::corrupt_image, "loops");
    }
    SUBCASE("backing format from the header extension") {
        Builder base, top;
        base.write("q-base.img");
        const auto end = top.extension(112, 0xe2792aca, "qcow2");
        top.be32(end, 0);
        top.be64(8, 0x200);
        top.be32(16, 10);
        top.text(0x200, "q-base.img");
        top.l2(0, 0);  // top has nothing: the base shows through
        auto img = open(top.write("q-top.img"));
        REQUIRE(img);
        CHECK(img.value()->info().backing_filename == "q-base.img");
        CHECK(img.value()->info().backing_format == "qcow2");
        std::vector<std::byte> buf(cs);
        REQUIRE(img.value()->read(0, buf));
        CHECK(buf[10] == Builder::pattern(10));
        auto runs = img.value()->block_status(0, cs);
        REQUIRE(runs);
        CHECK(runs.value().front().depth == 1);
    }
}

TEST_CASE("qcow2: external data files") {
    auto with_data_file = [](const std::string &name) {
        Builder b;
        b.be64(72, 1ULL << 2);
        const auto end = b.extension(112, 0x44415441, name);
        b.be32(end, 0);
        return b;
    };
    SUBCASE("outside the folder refused") {
        REQUIRE_ERROR(open(with_data_file("/tmp/elsewhere.raw").write("q-df-abs.qcow2")), Errc::permission_denied,
                      "external data file '/tmp/elsewhere.raw' is an absolute path");
        REQUIRE_ERROR(open(with_data_file("../elsewhere.raw").write("q-df-dotdot.qcow2")), Errc::permission_denied, "'..'");
    }
    SUBCASE("not named") {
        Builder b;
        b.be64(72, 1ULL << 2);
        REQUIRE_ERROR(open(b.write("q-df-unnamed.qcow2")), Errc::unsupported, "does not name it");
    }
    SUBCASE("guest data comes from the data file") {
        auto b = with_data_file("q-df.raw");
        b.l2(0, (cs * 2) | oflag_copied);  // host offset in the data file
        b.write("q-df.qcow2");
        std::vector<std::byte> data(4 * cs);
        for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i / 100);
        std::ofstream(work("q-df.raw"), std::ios::binary).write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
        auto img = open(work("q-df.qcow2"));
        REQUIRE(img);
        std::vector<std::byte> buf(cs);
        REQUIRE(img.value()->read(0, buf));
        CHECK(std::memcmp(buf.data(), data.data() + 2 * cs, cs) == 0);
        CHECK(img.value()->info().files.size() == 2);
    }
}

TEST_CASE("qcow2: features we cannot honour are refused by name") {
    SUBCASE("encrypted") {
        Builder b;
        b.be32(32, 2);
        REQUIRE_ERROR(open(b.write("q-enc.qcow2")), Errc::unsupported, "encrypted qcow2 images are not supported");
    }
    SUBCASE("unknown incompatible bit") {
        Builder b;
        b.be64(72, (1ULL << 7) | (1ULL << 40));
        REQUIRE_ERROR(open(b.write("q-incompat.qcow2")), Errc::unsupported, "unknown incompatible features: bit 7, bit 40");
    }
    SUBCASE("unknown incompatible bit named by the feature table") {
        Builder b;
        b.be64(72, 1ULL << 9);
        std::string entry(48, '\0');
        entry[0] = 0;
        entry[1] = 9;
        std::memcpy(entry.data() + 2, "time travel", 11);
        const auto end = b.extension(112, 0x6803f857, entry);
        b.be32(end, 0);
        REQUIRE_ERROR(open(b.write("q-incompat-named.qcow2")), Errc::unsupported, "bit 9 (time travel)");
    }
    SUBCASE("unknown compression type") {
        Builder b;
        b.be64(72, 1ULL << 3);
        b.f[104] = std::byte{7};
        REQUIRE_ERROR(open(b.write("q-ctype.qcow2")), Errc::unsupported, "compression type 7");
    }
    SUBCASE("zstd without its feature bit") {
        Builder b;
        b.f[104] = std::byte{1};
        REQUIRE_ERROR(open(b.write("q-ctype2.qcow2")), Errc::corrupt_image, "feature bit is not set");
    }
    SUBCASE("dirty and corrupt bits still read") {
        Builder b;
        b.be64(72, 3);
        auto img = open(b.write("q-dirty.qcow2"));
        REQUIRE(img);
        CHECK(img.value()->info().dirty);
        CHECK(img.value()->info().format_specific["corrupt"] == true);
    }
}

TEST_CASE("qcow2: extended L2 entries") {
    // 16 KiB clusters: 512-byte subclusters; an L2 table of 1024 128-bit entries.
    Builder b;
    b.f.assign(6 * 16384, std::byte{0});
    const std::uint64_t c = 16384;
    b.be32(0, 0x514649fb);
    b.be32(4, 3);
    b.be32(20, 14);
    b.be64(24, 1 << 20);
    b.be32(36, 1);
    b.be64(40, c);
    b.be64(48, 2 * c);
    b.be32(56, 1);
    b.be64(72, 1ULL << 4);
    b.be32(96, 4);
    b.be32(100, 112);
    b.be64(c, (4 * c) | oflag_copied);
    b.be64(2 * c, 3 * c);
    for (int i = 0; i < 6; ++i) b.be16(3 * c + 2 * static_cast<std::uint64_t>(i), 1);
    for (std::uint64_t i = 0; i < c; ++i) b.f[5 * c + i] = std::byte{0xab};
    SUBCASE("per-subcluster status") {
        b.be64(4 * c, (5 * c) | oflag_copied);
        b.be64(4 * c + 8, 0x0000000A00000005ULL);  // subclusters 0 and 2 allocated, 1 and 3 zero
        auto img = open(b.write("q-ext-ok.qcow2"));
        REQUIRE(img);
        auto runs = img.value()->block_status(0, c);
        REQUIRE(runs);
        const auto &r = runs.value();
        REQUIRE(r.size() == 5);
        CHECK((r[0].kind == ExtentKind::data && r[0].length == 512 && r[0].host_offset == 5 * c));
        CHECK((r[1].kind == ExtentKind::zero && r[1].length == 512));
        CHECK((r[2].kind == ExtentKind::data && r[2].host_offset == 5 * c + 1024));
        CHECK((r[3].kind == ExtentKind::zero && r[3].length == 512));
        CHECK((r[4].kind == ExtentKind::hole && r[4].length == c - 2048));
        std::vector<std::byte> buf(2048);
        REQUIRE(img.value()->read(0, buf));
        CHECK(buf[0] == std::byte{0xab});
        CHECK(buf[600] == std::byte{0});
        CHECK(buf[1100] == std::byte{0xab});
        auto report = check_image(work("q-ext-ok.qcow2"), qcow2_options());
        REQUIRE(report);
        CHECK(report.value().clean);
    }
    SUBCASE("a subcluster both allocated and zero") {
        b.be64(4 * c, (5 * c) | oflag_copied);
        b.be64(4 * c + 8, 0x0000000100000001ULL);
        REQUIRE_ERROR(open_and_read(b.write("q-ext-bad.qcow2")), Errc::corrupt_image, "both allocated and zero");
        auto report = check_image(work("q-ext-bad.qcow2"), qcow2_options());
        REQUIRE(report);
        CHECK(report.value().corruptions == 1);
    }
    SUBCASE("allocated subclusters without a host cluster") {
        b.be64(4 * c + 8, 0x1);
        REQUIRE_ERROR(open_and_read(b.write("q-ext-bad2.qcow2")), Errc::corrupt_image, "unallocated cluster with allocated subclusters");
    }
}

TEST_CASE("qcow2: check finds damaged refcounts") {
    SUBCASE("refcount of the data cluster zeroed") {
        Builder b;
        b.be16(3 * cs + 2 * 5, 0);
        auto r = check_image(b.write("q-chk-zero.qcow2"), qcow2_options());
        REQUIRE(r);
        CHECK_FALSE(r.value().clean);
        CHECK(r.value().corruptions == 2);  // refcount too low, and OFLAG_COPIED no longer matches
    }
    SUBCASE("a leaked cluster") {
        Builder b;
        b.f.resize(7 * cs);
        b.be16(3 * cs + 2 * 6, 1);
        auto r = check_image(b.write("q-chk-leak.qcow2"), qcow2_options());
        REQUIRE(r);
        CHECK(r.value().corruptions == 0);
        CHECK(r.value().leaks == 1);
        CHECK(r.value().image_end_offset == 7 * cs);
    }
    SUBCASE("a refcount block outside the image") {
        Builder b;
        b.be64(2 * cs + 8, 0x100000);
        auto r = check_image(b.write("q-chk-rb.qcow2"), qcow2_options());
        REQUIRE(r);
        CHECK(r.value().corruptions == 1);
        CHECK(r.value().messages.front().find("refcount block 1 is outside image") != std::string::npos);
    }
    SUBCASE("L2 table beyond the file: an error, not a failure") {
        Builder b;
        b.be64(1 * cs, 0x64000 | oflag_copied);
        auto r = check_image(b.write("q-chk-l2.qcow2"), qcow2_options());
        REQUIRE(r);
        CHECK(r.value().corruptions >= 1);
    }
}

TEST_CASE("qcow2: a failed conversion leaves no output") {
    Builder b;
    b.l2(1, 0x100000 | oflag_copied);
    const auto src = b.write("q-bad-src.qcow2");
    for (const char *fmt : {"raw", "qcow2"}) {
        const auto dst = work(std::string("q-bad-out.") + fmt);
        ::unlink(dst.c_str());
        ConvertOptions co;
        co.output_format = fmt;
        OpenOptions oo;
        oo.format = "qcow2";
        auto r = convert(src, oo, dst, co);
        REQUIRE_ERROR(r, Errc::corrupt_image, "data cluster beyond end of file");
        CHECK_FALSE(exists(dst));
    }
    CHECK(leftover_temporaries("q-bad-out") == 0);
}

TEST_CASE("qcow2: writer output reads back and checks clean") {
    Builder b;
    const auto src = b.write("q-w-src.qcow2");
    for (bool compress : {false, true}) {
        const auto dst = work(compress ? "q-w-out-c.qcow2" : "q-w-out.qcow2");
        ConvertOptions co;
        co.output_format = "qcow2";
        co.compress = compress;
        co.format_options = {{"cluster_size", "512"}};
        REQUIRE(convert(src, qcow2_options(), dst, co));
        auto r = check_image(dst, qcow2_options());
        REQUIRE(r);
        CHECK(r.value().clean);
        auto a = open(src), c = open(dst);
        REQUIRE(a);
        REQUIRE(c);
        auto same = compare(*a.value(), *c.value());
        REQUIRE(same);
        CHECK(same.value().identical);
    }
}
