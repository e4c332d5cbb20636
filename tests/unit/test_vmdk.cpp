// VMDK reader against hostile input: headers, tables, markers and descriptors built in code.
#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include "core/codec.hpp"
#include "core/endian.hpp"
#include "format/vmdk/descriptor.hpp"
#include "format/vmdk/sparse_header.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using hypersdk::test::work;  // this file has a write_file of its own, on full paths
using namespace hypersdk::format::vmdk;

namespace {

void write_file(const std::string &path, const void *data, std::size_t size) {
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, data, size) == static_cast<ssize_t>(size));
    ::close(fd);
}
void write_file(const std::string &path, const std::vector<std::byte> &b) { write_file(path, b.data(), b.size()); }
void write_file(const std::string &path, const std::string &s) { write_file(path, s.data(), s.size()); }

std::string make_descriptor(const std::string &create_type, const std::vector<std::string> &extents, std::uint32_t cid = 0x11111111,
                            std::uint32_t parent_cid = 0xffffffff, const std::string &hint = "") {
    std::string d = fmt::format("# Disk DescriptorFile\nversion=1\nCID={:08x}\nparentCID={:08x}\ncreateType=\"{}\"\n", cid, parent_cid, create_type);
    if (!hint.empty()) d += fmt::format("parentFileNameHint=\"{}\"\n", hint);
    for (const auto &e : extents) d += e + "\n";
    d += "ddb.adapterType = \"lsilogic\"\n";
    return d;
}

// A monolithicSparse file: header, descriptor at sector 1 (20 sectors), directory at sector 21,
// tables after it, grains after those. Grains are filled with their `fill` byte.
struct SparseBuilder {
    SparseHeader h;
    std::map<std::uint64_t, std::uint8_t> grains;  // grain index -> fill byte
    std::string descriptor;
    std::vector<std::byte> file;
    std::uint64_t tables = 0, first_table = 0, first_grain = 0;

    SparseBuilder(std::uint64_t capacity, std::uint64_t grain_sectors = 128) {
        h.version = 1;
        h.flags = flag_newline_detect;
        h.capacity = capacity;
        h.grain_size = grain_sectors;
        h.descriptor_offset = 1;
        h.descriptor_size = 20;
        h.gd_offset = 21;
        descriptor = make_descriptor("monolithicSparse", {fmt::format("RW {} SPARSE \"x.vmdk\"", capacity)});
    }
    std::uint32_t gd_entry(std::size_t i) const { return load_le<std::uint32_t>(file.data() + h.gd_offset * 512 + i * 4); }
    void set_gd_entry(std::size_t i, std::uint32_t v) { store_le(file.data() + h.gd_offset * 512 + i * 4, v); }
    std::size_t gte_at(std::uint64_t g) const { return static_cast<std::size_t>((first_table + g / 512 * 4) * 512 + (g % 512) * 4); }
    void set_gte(std::uint64_t g, std::uint32_t v) { store_le(file.data() + gte_at(g), v); }
    std::uint32_t gte(std::uint64_t g) const { return load_le<std::uint32_t>(file.data() + gte_at(g)); }

    void build() {
        const std::uint64_t n = (h.capacity + h.grain_size - 1) / h.grain_size;
        tables = (n + 511) / 512;
        const std::uint64_t gd_sectors = (tables * 4 + 511) / 512;
        first_table = h.gd_offset + gd_sectors;
        first_grain = first_table + tables * 4;
        h.overhead = first_grain;
        file.assign(static_cast<std::size_t>((first_grain + grains.size() * h.grain_size) * 512), std::byte{0});
        encode_sparse_header(h, std::span<std::byte, 512>(file.data(), 512));
        std::memcpy(file.data() + 512, descriptor.data(), descriptor.size());
        for (std::uint64_t t = 0; t < tables; ++t) set_gd_entry(static_cast<std::size_t>(t), static_cast<std::uint32_t>(first_table + t * 4));
        std::uint64_t sector = first_grain;
        for (auto [g, fill] : grains) {
            set_gte(g, static_cast<std::uint32_t>(sector));
            std::memset(file.data() + sector * 512, fill, static_cast<std::size_t>(h.grain_size * 512));
            sector += h.grain_size;
        }
    }
    void rewrite_header() { encode_sparse_header(h, std::span<std::byte, 512>(file.data(), 512)); }
};

// A streamOptimized stream: header (GD at end), descriptor, grains, one grain table per group with
// data, directory, footer, end-of-stream marker.
struct StreamBuilder {
    std::uint64_t capacity;
    std::map<std::uint64_t, std::uint8_t> grains;
    std::vector<std::byte> file;
    std::map<std::uint64_t, std::size_t> grain_offset;  // grain -> byte offset of its marker
    std::size_t gd_at = 0;

    explicit StreamBuilder(std::uint64_t cap) : capacity(cap) {}
    void sector(const std::array<std::byte, 512> &s) { file.insert(file.end(), s.begin(), s.end()); }
    void pad() { file.resize((file.size() + 511) / 512 * 512); }
    void marker(MarkerType t, std::uint64_t sectors) {
        std::array<std::byte, 512> m{};
        encode_metadata_marker(m, t, sectors);
        sector(m);
    }
    SparseHeader header(std::uint64_t gd) const {
        SparseHeader h;
        h.version = 3;
        h.flags = flag_newline_detect | flag_compressed | flag_markers;
        h.capacity = capacity;
        h.grain_size = 128;
        h.descriptor_offset = 1;
        h.descriptor_size = 2;
        h.gd_offset = gd;
        h.overhead = 128;
        h.compress_algorithm = compression_deflate;
        return h;
    }
    void build(bool with_directory = true) {
        file.clear();
        std::array<std::byte, 512> s{};
        encode_sparse_header(header(gd_at_end), s);
        sector(s);
        const std::string d = make_descriptor("streamOptimized", {fmt::format("RW {} SPARSE \"s.vmdk\"", capacity)});
        file.insert(file.end(), reinterpret_cast<const std::byte *>(d.data()), reinterpret_cast<const std::byte *>(d.data()) + d.size());
        file.resize(128 * 512);
        std::vector<std::byte> plain(65536), packed(70000);
        for (auto [g, fill] : grains) {
            std::memset(plain.data(), fill, plain.size());
            auto n = core::codec::compress(core::codec::Kind::zlib, 6, plain, packed);
            REQUIRE(n);
            grain_offset[g] = file.size();
            std::array<std::byte, 12> head{};
            store_le(head.data(), g * 128);
            store_le(head.data() + 8, static_cast<std::uint32_t>(n.value()));
            file.insert(file.end(), head.begin(), head.end());
            file.insert(file.end(), packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(n.value()));
            pad();
        }
        if (!with_directory) {
            marker(MarkerType::end_of_stream, 0);
            return;
        }
        const std::uint64_t tables = (capacity / 128 + 511) / 512;
        std::vector<std::uint32_t> gd(static_cast<std::size_t>(tables), 0);
        for (std::uint64_t t = 0; t < tables; ++t) {
            std::vector<std::byte> gt(2048);
            bool any = false;
            for (auto [g, off] : grain_offset)
                if (g / 512 == t) {
                    store_le(gt.data() + (g % 512) * 4, static_cast<std::uint32_t>(off / 512));
                    any = true;
                }
            if (!any) continue;
            marker(MarkerType::grain_table, 4);
            gd[static_cast<std::size_t>(t)] = static_cast<std::uint32_t>(file.size() / 512);
            file.insert(file.end(), gt.begin(), gt.end());
        }
        marker(MarkerType::grain_directory, 1);
        gd_at = file.size();
        std::vector<std::byte> gdb(512);
        for (std::size_t i = 0; i < gd.size(); ++i) store_le(gdb.data() + i * 4, gd[i]);
        file.insert(file.end(), gdb.begin(), gdb.end());
        marker(MarkerType::footer, 1);
        encode_sparse_header(header(gd_at / 512), s);
        sector(s);
        marker(MarkerType::end_of_stream, 0);
    }
    // Byte offset of grain table entry for grain g (first table only).
    std::size_t gte_at(std::uint64_t g) const {
        const std::uint32_t table_sector = load_le<std::uint32_t>(file.data() + gd_at + (g / 512) * 4);
        return table_sector * 512 + (g % 512) * 4;
    }
};

Result<std::unique_ptr<Image>> open_vmdk(const std::string &path, bool allow_external = false) {
    OpenOptions o;
    o.format = "vmdk";
    o.allow_external_files = allow_external;
    return open_image(path, o);
}

std::string open_error(const std::string &path) {
    auto img = open_vmdk(path);
    REQUIRE_FALSE(img);
    return img.error().message;
}

Result<std::vector<std::byte>> read_all(Image &img) {
    std::vector<std::byte> buf(static_cast<std::size_t>(img.virtual_size()));
    HSDK_TRYV(img.read(0, buf));
    return buf;
}

bool contains(const std::string &haystack, const std::string &needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

// ---- descriptor parser -------------------------------------------------------------------------------

TEST_CASE("descriptor: CRLF, comments, quoted names with spaces, every access mode and ZERO") {
    const std::string text =
        "# Disk DescriptorFile\r\nversion=1\r\nCID=0000abcd\r\nparentCID=ffffffff\r\ncreateType=\"twoGbMaxExtentFlat\"\r\n"
        "  # indented comment\r\n\r\nRW 100 FLAT \"my disk-f001.vmdk\" 0\r\nRDONLY 50 FLAT \"b.vmdk\" 7\r\nRW 10 ZERO\r\n"
        "NOACCESS 5 SPARSE \"c d.vmdk\"\r\nddb.adapterType = \"ide\"\r\nddb.uuid = \"60 00 c2 9f\"\r\n";
    auto d = parse_descriptor(text);
    REQUIRE(d);
    CHECK(d.value().cid == 0xabcdu);
    CHECK(d.value().parent_cid == 0xffffffffu);
    CHECK(d.value().create_type == "twoGbMaxExtentFlat");
    REQUIRE(d.value().extents.size() == 4);
    CHECK(d.value().extents[0].filename == "my disk-f001.vmdk");
    CHECK(d.value().extents[1].access == ExtentAccess::rdonly);
    CHECK(d.value().extents[1].offset == 7);
    CHECK(d.value().extents[2].type == ExtentType::zero);
    CHECK(d.value().extents[2].filename.empty());
    CHECK(d.value().extents[3].access == ExtentAccess::noaccess);
    CHECK(d.value().extents[3].filename == "c d.vmdk");
    REQUIRE(d.value().find_ddb("ddb.adapterType"));
    CHECK(*d.value().find_ddb("ddb.adapterType") == "ide");
}

TEST_CASE("descriptor: malformed lines are corrupt, with the line number") {
    for (const char *bad : {"version=1\nthis line means nothing\n", "version=1\nRW 10 FLAT \"unterminated\n", "version=1\nRW x FLAT \"a\" 0\n",
                            "version=1\nRW 10 BOGUS \"a\"\n", "version=1\nRW 10 SPARSE\n", "version=1\nCID=xyz\n",
                            "version=1\nRW 10 SPARSE \"a\" 5\n", "version=1\nRW 99999999999999999999999 FLAT \"a\" 0\n"}) {
        auto d = parse_descriptor(bad);
        REQUIRE_FALSE(d);
        CHECK(d.error().code == Errc::corrupt_image);
        CHECK(contains(d.error().message, "line 2"));
    }
}

TEST_CASE("descriptor: size, line and extent limits") {
    std::string many = "version=1\n";
    for (int i = 0; i <= 10000; ++i) many += "RW 1 ZERO\n";
    auto d = parse_descriptor(many);
    REQUIRE_FALSE(d);
    CHECK(contains(d.error().message, "more than 10000 extents"));
    CHECK_FALSE(parse_descriptor(std::string(11 << 20, '#')));
    CHECK_FALSE(descriptor_text(std::string("version=1\n\x01\x02", 12), "descriptor"));
    const std::string padded("version=1\n\0\0garbage\x01", 20);
    auto cut = descriptor_text(padded, "descriptor");
    REQUIRE(cut);
    CHECK(cut.value() == "version=1\n");
    CHECK(looks_like_descriptor("# Disk DescriptorFile\r\n\r\nversion=1\r\n"));
    CHECK_FALSE(looks_like_descriptor("hello=1\nversion=1\n"));
}

// ---- hosted sparse ------------------------------------------------------------------------------------

TEST_CASE("sparse: a well-formed file reads back, holes and zeroed grains included") {
    SparseBuilder b(128 * 600 + 5);  // two tables, last grain short
    b.h.version = 2;
    b.h.flags |= flag_zeroed_grain_gte;
    b.grains = {{0, 0x11}, {3, 0x33}, {599, 0x77}, {600, 0x88}};
    b.build();
    b.set_gte(4, gte_zeroed);
    b.file.resize(b.file.size() - 512 * 100);  // the short last grain need not be stored whole
    write_file(work("ok.vmdk"), b.file);
    auto img = open_vmdk(work("ok.vmdk"));
    REQUIRE(img);
    auto data = read_all(*img.value());
    REQUIRE(data);
    CHECK(data.value()[0] == std::byte{0x11});
    CHECK(data.value()[3 * 65536 + 100] == std::byte{0x33});
    CHECK(data.value()[600 * 65536 + 2559] == std::byte{0x88});
    auto runs = img.value()->block_status(0, img.value()->virtual_size());
    REQUIRE(runs);
    bool saw_zero = false;
    for (const auto &r : runs.value())
        if (r.kind == ExtentKind::zero && r.offset == 4 * 65536) saw_zero = true;
    CHECK(saw_zero);
    auto report = check_image(work("ok.vmdk"));
    REQUIRE(report);
    CHECK(report.value().clean);
    CHECK(report.value().allocated_clusters == 4);
}

TEST_CASE("sparse: absurd header fields are refused") {
    struct Case {
        const char *what;
        void (*mutate)(SparseHeader &);
        const char *needle;
    };
    const Case cases[] = {
        {"grain size 0", [](SparseHeader &h) { h.grain_size = 0; }, "grain size"},
        {"grain size not a power of two", [](SparseHeader &h) { h.grain_size = 96; }, "grain size"},
        {"huge grain", [](SparseHeader &h) { h.grain_size = 1ULL << 40; }, "grain size"},
        {"table size", [](SparseHeader &h) { h.gtes_per_gt = 4096; }, "entries per grain table"},
        {"capacity", [](SparseHeader &h) { h.capacity = 1ULL << 60; }, "capacity"},
        {"directory past EOF", [](SparseHeader &h) { h.gd_offset = 1ULL << 30; }, "grain directory"},
        {"directory offset overflow", [](SparseHeader &h) { h.gd_offset = 1ULL << 62; }, "grain directory"},
        {"newline check", [](SparseHeader &h) { h.newline_check = {'\n', ' ', '\n', '\n'}; }, "text mode"},
        {"version", [](SparseHeader &h) { h.version = 4; }, "version 4"},
        {"descriptor size", [](SparseHeader &h) { h.descriptor_size = 1ULL << 20; }, "limit"},
    };
    for (const auto &c : cases) {
        CAPTURE(c.what);
        SparseBuilder b(128 * 40);
        b.grains = {{1, 0x42}};
        b.build();
        c.mutate(b.h);
        b.rewrite_header();
        write_file(work("bad-header.vmdk"), b.file);
        const std::string message = open_error(work("bad-header.vmdk"));
        CHECK(contains(message, c.needle));
    }
}

TEST_CASE("sparse: a grain table past the end of the file fails where it is used, and check counts it") {
    SparseBuilder b(128 * 512 * 3);
    b.grains = {{0, 0x10}, {512 * 2, 0x20}};
    b.build();
    b.set_gd_entry(1, 0x40000000);  // table 1 far beyond EOF (no grains there, but still referenced)
    write_file(work("gt-eof.vmdk"), b.file);
    auto img = open_vmdk(work("gt-eof.vmdk"));
    REQUIRE(img);
    std::vector<std::byte> buf(65536);
    CHECK(img.value()->read(0, buf));  // table 0 is fine
    auto r = img.value()->read(512ULL * 65536 + 4096, buf);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::corrupt_image);
    CHECK(contains(r.error().message, "grain table 1"));
    CHECK(contains(r.error().message, "beyond the end of the file"));
    auto report = check_image(work("gt-eof.vmdk"));
    REQUIRE(report);
    CHECK_FALSE(report.value().clean);
    CHECK(report.value().corruptions >= 1);
}

TEST_CASE("sparse: directory entries sharing or overlapping grain tables are refused") {
    SparseBuilder b(128 * 512 * 3);
    b.grains = {{0, 1}};
    b.build();
    b.set_gd_entry(2, b.gd_entry(0));  // one table serving two directory entries
    write_file(work("shared-gt.vmdk"), b.file);
    CHECK(contains(open_error(work("shared-gt.vmdk")), "overlapping grain tables"));
    b.set_gd_entry(2, b.gd_entry(0) + 2);  // half a table apart
    write_file(work("shared-gt.vmdk"), b.file);
    CHECK(contains(open_error(work("shared-gt.vmdk")), "entries 0 and 2"));
}

TEST_CASE("sparse: the redundant directory stands in for a broken primary") {
    SparseBuilder b(128 * 40);
    b.grains = {{2, 0x5a}};
    b.build();
    // A redundant copy: its own directory sector and table, appended to the file.
    const std::uint64_t rgd = b.file.size() / 512;
    b.file.resize(b.file.size() + 512 + 2048);
    store_le(b.file.data() + rgd * 512, static_cast<std::uint32_t>(rgd + 1));
    store_le(b.file.data() + (rgd + 1) * 512 + 2 * 4, b.gte(2));
    b.h.flags |= flag_redundant_gt;
    b.h.rgd_offset = rgd;
    b.rewrite_header();
    b.set_gd_entry(0, 0x7fffffff);
    write_file(work("rgd.vmdk"), b.file);
    auto img = open_vmdk(work("rgd.vmdk"));
    REQUIRE(img);
    auto data = read_all(*img.value());
    REQUIRE(data);
    CHECK(data.value()[2 * 65536] == std::byte{0x5a});
    auto report = check_image(work("rgd.vmdk"));
    REQUIRE(report);
    CHECK(report.value().corruptions == 1);  // the broken primary is still reported
}

TEST_CASE("sparse: grains past EOF, overlapping and shared grains") {
    SparseBuilder b(128 * 40);
    b.grains = {{0, 1}, {1, 2}, {2, 3}};
    b.build();
    b.set_gte(5, 0x7fff0000);  // past EOF
    write_file(work("grain-eof.vmdk"), b.file);
    auto img = open_vmdk(work("grain-eof.vmdk"));
    REQUIRE(img);
    std::vector<std::byte> buf(4096);
    auto r = img.value()->read(5 * 65536, buf);
    REQUIRE_FALSE(r);
    CHECK(contains(r.error().message, "beyond the end of the file"));

    b.set_gte(5, 0);
    b.set_gte(7, b.gte(1));  // two entries share one grain
    b.set_gte(8, b.gte(0) + 64);  // a grain overlapping two others
    b.set_gte(9, static_cast<std::uint32_t>(b.first_table));  // a grain over the grain tables
    write_file(work("shared.vmdk"), b.file);
    auto report = check_image(work("shared.vmdk"));
    REQUIRE(report);
    CHECK(report.value().corruptions >= 3);
    bool same = false, overlap = false;
    for (const auto &m : report.value().messages) {
        same = same || contains(m, "point at the same data");
        overlap = overlap || contains(m, "grain table 0 and grain 9 overlap") || contains(m, "grain 9 and grain table 0 overlap");
    }
    CHECK(same);
    CHECK(overlap);
}

// ---- streams --------------------------------------------------------------------------------------------

TEST_CASE("stream: markers are checked against the grain table") {
    StreamBuilder s(128 * 20);
    s.grains = {{0, 0x61}, {1, 0x62}, {5, 0x65}};
    s.build();
    write_file(work("stream-ok.vmdk"), s.file);
    {
        auto img = open_vmdk(work("stream-ok.vmdk"));
        REQUIRE(img);
        auto data = read_all(*img.value());
        REQUIRE(data);
        CHECK(data.value()[5 * 65536 + 9] == std::byte{0x65});
    }
    auto expect_read_error = [&](const std::vector<std::byte> &file, const char *needle) {
        write_file(work("stream-bad.vmdk"), file);
        auto img = open_vmdk(work("stream-bad.vmdk"));
        REQUIRE(img);
        auto data = read_all(*img.value());
        REQUIRE_FALSE(data);
        CHECK(data.error().code == Errc::corrupt_image);
        CHECK(contains(data.error().message, needle));
    };
    {  // the marker names another LBA
        auto f = s.file;
        store_le(f.data() + s.grain_offset[1], std::uint64_t{128 * 7});
        expect_read_error(f, "is for sector 896");
    }
    {  // the table points at a metadata marker
        auto f = s.file;
        store_le(f.data() + s.gte_at(1), static_cast<std::uint32_t>(s.gd_at / 512 - 1));
        expect_read_error(f, "metadata marker");
    }
    {  // a compressed size larger than two grains
        auto f = s.file;
        store_le(f.data() + s.grain_offset[5] + 8, std::uint32_t{200000});
        expect_read_error(f, "more than twice the grain size");
    }
    {  // damaged deflate data
        auto f = s.file;
        std::memset(f.data() + s.grain_offset[0] + 14, 0xff, 40);
        expect_read_error(f, "damaged");
    }
}

TEST_CASE("stream: without a directory the markers rebuild the map, bad markers are refused") {
    StreamBuilder s(128 * 20);
    s.grains = {{2, 0x72}, {9, 0x79}};
    s.build(false);
    write_file(work("stream-nogd.vmdk"), s.file);
    {
        auto img = open_vmdk(work("stream-nogd.vmdk"));
        REQUIRE(img);
        auto data = read_all(*img.value());
        REQUIRE(data);
        CHECK(data.value()[9 * 65536] == std::byte{0x79});
        CHECK(data.value()[3 * 65536] == std::byte{0});
    }
    auto f = s.file;
    store_le(f.data() + s.grain_offset[9], std::uint64_t{128 * 2});  // grain 2 twice
    write_file(work("stream-dup.vmdk"), f);
    CHECK(contains(open_error(work("stream-dup.vmdk")), "twice"));
    f = s.file;
    store_le(f.data() + s.grain_offset[9], std::uint64_t{128 * 20});  // past the capacity
    write_file(work("stream-lba.vmdk"), f);
    CHECK(contains(open_error(work("stream-lba.vmdk")), "names sector 2560"));
    f = s.file;
    store_le(f.data() + s.grain_offset[9], std::uint64_t{0});
    store_le(f.data() + s.grain_offset[9] + 8, std::uint32_t{0});
    store_le(f.data() + s.grain_offset[9] + 12, std::uint32_t{77});  // unknown marker type
    write_file(work("stream-type.vmdk"), f);
    CHECK(contains(open_error(work("stream-type.vmdk")), "unknown marker type 77"));
}

// ---- descriptors and extents -------------------------------------------------------------------------

TEST_CASE("extent files outside the image's folder are refused") {
    ::mkdir(work("inner").c_str(), 0755);
    std::vector<std::byte> data(1 << 20, std::byte{0x33});
    write_file(work("outside.bin"), data);
    write_file(work("inner/abs.vmdk"), make_descriptor("monolithicFlat", {fmt::format("RW 2048 FLAT \"{}\" 0", work("outside.bin"))}));
    write_file(work("inner/up.vmdk"), make_descriptor("monolithicFlat", {"RW 2048 FLAT \"../outside.bin\" 0"}));
    for (const char *name : {"inner/abs.vmdk", "inner/up.vmdk"}) {
        auto img = open_vmdk(work(name));
        REQUIRE_FALSE(img);
        CHECK(img.error().code == Errc::permission_denied);
        CHECK(contains(img.error().message, "outside.bin"));
        CHECK(open_vmdk(work(name), true));
    }
}

TEST_CASE("descriptor files of 100 MiB are refused without being read") {
    const std::string path = work("huge.vmdk");
    write_file(path, std::string("# Disk DescriptorFile\nversion=1\n"));
    REQUIRE(::truncate(path.c_str(), 100LL << 20) == 0);
    auto probed = probe_format(path);
    REQUIRE(probed);
    CHECK(probed.value() == "vmdk");
    const std::string message = open_error(path);
    CHECK(contains(message, "exceeds the limit"));
}

TEST_CASE("extents must hold what the descriptor maps") {
    SparseBuilder b(128 * 4);
    b.grains = {{0, 9}};
    b.build();
    write_file(work("small-s001.vmdk"), b.file);
    write_file(work("over.vmdk"), make_descriptor("twoGbMaxExtentSparse", {"RW 1024 SPARSE \"small-s001.vmdk\""}));
    CHECK(contains(open_error(work("over.vmdk")), "holds 512 sectors, the descriptor maps 1024"));
    write_file(work("short-flat.bin"), std::vector<std::byte>(1000));
    write_file(work("flat-short.vmdk"), make_descriptor("monolithicFlat", {"RW 4 FLAT \"short-flat.bin\" 0"}));
    CHECK(contains(open_error(work("flat-short.vmdk")), "holds 1000 bytes"));
    write_file(work("big-sum.vmdk"), make_descriptor("monolithicFlat", {"RW 2251799813685248 ZERO", "RW 2251799813685248 ZERO"}));
    CHECK(contains(open_error(work("big-sum.vmdk")), "add up to more than"));
    write_file(work("none.vmdk"), make_descriptor("monolithicFlat", {}));
    CHECK(contains(open_error(work("none.vmdk")), "no extents"));
    write_file(work("device.vmdk"), make_descriptor("fullDevice", {"RW 4 FLAT \"/dev/sda\" 0"}));
    auto dev = open_vmdk(work("device.vmdk"));
    REQUIRE_FALSE(dev);
    CHECK(dev.error().code == Errc::unsupported);
    write_file(work("text-extent.vmdk"), make_descriptor("twoGbMaxExtentSparse", {"RW 4 SPARSE \"over.vmdk\""}));
    CHECK(contains(open_error(work("text-extent.vmdk")), "neither a hosted"));
}

TEST_CASE("NOACCESS extents fail when read, not when opened") {
    write_file(work("na-a.bin"), std::vector<std::byte>(512 * 8, std::byte{1}));
    write_file(work("na.vmdk"), make_descriptor("monolithicFlat", {"RW 8 FLAT \"na-a.bin\" 0", "NOACCESS 8 FLAT \"nowhere.bin\" 0"}));
    auto img = open_vmdk(work("na.vmdk"));
    REQUIRE(img);
    CHECK(img.value()->virtual_size() == 16 * 512);
    std::vector<std::byte> buf(512);
    CHECK(img.value()->read(0, buf));
    auto r = img.value()->read(8 * 512, buf);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::permission_denied);
    CHECK(contains(r.error().message, "NOACCESS"));
}

TEST_CASE("parents: CID mismatch, missing hint and loops") {
    write_file(work("p-flat.bin"), std::vector<std::byte>(512 * 8, std::byte{7}));
    write_file(work("p.vmdk"), make_descriptor("monolithicFlat", {"RW 8 FLAT \"p-flat.bin\" 0"}, 0xaaaa0001));
    write_file(work("p-zero.vmdk"), make_descriptor("monolithicFlat", {"RW 8 ZERO"}, 0x22222222, 0xaaaa0001, "p.vmdk"));
    {
        auto img = open_vmdk(work("p-zero.vmdk"));
        REQUIRE(img);
        CHECK(img.value()->chain_info().size() == 2);
    }
    write_file(work("c-leftover.vmdk"), make_descriptor("monolithicFlat", {"RW 8 ZERO"}, 0x22222222, 0xffffffff, "gone.vmdk"));
    {
        auto img = open_vmdk(work("c-leftover.vmdk"));  // parentCID ffffffff: no parent, the hint is a leftover
        REQUIRE(img);
        CHECK(img.value()->chain_info().size() == 1);
        CHECK(img.value()->info().backing_filename.empty());
    }
    write_file(work("c-mismatch.vmdk"), make_descriptor("monolithicFlat", {"RW 8 ZERO"}, 0x22222222, 0xbbbb0002, "p.vmdk"));
    const std::string mismatch = open_error(work("c-mismatch.vmdk"));
    CHECK(contains(mismatch, "corrupt image"));
    CHECK(contains(mismatch, "aaaa0001"));
    CHECK(contains(mismatch, "bbbb0002"));
    write_file(work("c-nohint.vmdk"), make_descriptor("monolithicFlat", {"RW 8 ZERO"}, 0x22222222, 0xbbbb0002));
    CHECK(contains(open_error(work("c-nohint.vmdk")), "names no parent"));
    write_file(work("loop-a.vmdk"), make_descriptor("monolithicFlat", {"RW 8 ZERO"}, 0xa, 0xb, "loop-b.vmdk"));
    write_file(work("loop-b.vmdk"), make_descriptor("monolithicFlat", {"RW 8 ZERO"}, 0xb, 0xa, "loop-a.vmdk"));
    CHECK(contains(open_error(work("loop-a.vmdk")), "loops"));
    write_file(work("raw-parent.bin"), std::vector<std::byte>(4096));
    write_file(work("c-rawparent.vmdk"), make_descriptor("monolithicFlat", {"RW 8 ZERO"}, 0x3, 0x4, "raw-parent.bin"));
    CHECK_FALSE(open_vmdk(work("c-rawparent.vmdk")));
}

// ---- COWD and seSparse ---------------------------------------------------------------------------------

TEST_CASE("COWD and seSparse headers are validated") {
    std::vector<std::byte> cowd(4096);
    std::memcpy(cowd.data(), "COWD", 4);
    store_le(cowd.data() + 4, std::uint32_t{1});
    store_le(cowd.data() + 12, std::uint32_t{1 << 20});  // 512 MiB
    store_le(cowd.data() + 16, std::uint32_t{1});        // 1-sector grains: 256 tables needed
    store_le(cowd.data() + 20, std::uint32_t{4});
    store_le(cowd.data() + 24, std::uint32_t{2});  // too few
    write_file(work("cowd-delta.vmdk"), cowd);
    write_file(work("cowd.vmdk"), make_descriptor("vmfsSparse", {"RW 1048576 VMFSSPARSE \"cowd-delta.vmdk\""}));
    CHECK(contains(open_error(work("cowd.vmdk")), "needs 256"));
    store_le(cowd.data() + 24, std::uint32_t{256});
    store_le(cowd.data() + 20, std::uint32_t{0x10000});  // directory past EOF
    write_file(work("cowd-delta.vmdk"), cowd);
    CHECK(contains(open_error(work("cowd.vmdk")), "outside the file"));

    std::vector<std::byte> se(128 * 512);
    auto put = [&](std::size_t field, std::uint64_t v) { store_le(se.data() + field * 8, v); };
    put(0, sesparse_const_magic);
    put(1, sesparse_version);
    put(2, 8 * 4096);  // capacity: 16 MiB
    put(3, 8);
    put(4, 64);
    put(10, 1);  // volatile header
    put(11, 1);
    put(16, 2);  // directory
    put(17, 1);
    put(18, 4);  // tables
    put(19, 64);
    put(24, 80);  // grains: room for one
    put(25, 8);
    store_le(se.data() + 512, sesparse_volatile_magic);
    store_le(se.data() + 1024, std::uint64_t{0x2000000000000005});  // invalid directory entry
    write_file(work("se-sesparse.vmdk"), se);
    write_file(work("se.vmdk"), make_descriptor("seSparse", {"RW 32768 SESPARSE \"se-sesparse.vmdk\""}));
    CHECK(contains(open_error(work("se.vmdk")), "invalid value"));
    store_le(se.data() + 1024, std::uint64_t{0x1000000000000009});  // table number past the area
    write_file(work("se-sesparse.vmdk"), se);
    CHECK(contains(open_error(work("se.vmdk")), "names grain table 9"));
    store_le(se.data() + 1024, std::uint64_t{0x1000000000000000});
    store_le(se.data() + 4 * 512, std::uint64_t{0x3000000000000007});  // grain slot 7 << 12, of 1
    write_file(work("se-sesparse.vmdk"), se);
    {
        auto img = open_vmdk(work("se.vmdk"));
        REQUIRE(img);
        std::vector<std::byte> buf(4096);
        auto r = img.value()->read(0, buf);
        REQUIRE_FALSE(r);
        CHECK(contains(r.error().message, "outside the grain area"));
    }
    store_le(se.data() + 512 + 24, std::uint64_t{1});  // journal to replay
    write_file(work("se-sesparse.vmdk"), se);
    auto img = open_vmdk(work("se.vmdk"));
    REQUIRE_FALSE(img);
    CHECK(img.error().code == Errc::unsupported);
}
