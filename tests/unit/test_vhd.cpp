// VHD driver: hostile and broken images built in code must fail with clear errors (never crash,
// hang or allocate without bound); parent references are policed; check() finds what it should.
#include "format/layer.hpp"
#include "format/vhd/vhd_format.hpp"
#include "format/vhd/vhd_parent.hpp"

#include "core/endian.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <sys/stat.h>
#include <string>
#include <unistd.h>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;
namespace vhd = hypersdk::format::vhd;

namespace {

constexpr std::uint64_t MiB = 1ULL << 20;

vhd::Uuid id_of(std::uint8_t seed) {
    vhd::Uuid u{};
    for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<std::uint8_t>(seed + i);
    return u;
}

vhd::Footer make_footer(std::uint64_t size, vhd::DiskType type, vhd::Uuid id) {
    vhd::Footer f;
    f.data_offset = type == vhd::DiskType::fixed ? vhd::no_data_offset : 512;
    f.creator_app = {'w', 'i', 'n', ' '};
    f.creator_os = {'W', 'i', '2', 'k'};
    f.current_size = f.original_size = size;
    f.geometry = vhd::geometry_for_sectors(size / 512);
    f.disk_type = static_cast<std::uint32_t>(type);
    f.unique_id = id;
    return f;
}

struct Locator {
    std::string code;  // "W2ru", ...
    std::string text;  // ASCII, stored UTF-16LE (W2*) or as is (MacX)
};

struct DynamicSpec {
    std::uint64_t size = 4 * MiB;
    std::uint32_t block_size = 2 * MiB;
    vhd::DiskType type = vhd::DiskType::dynamic;
    std::vector<std::uint32_t> allocated = {0};  // blocks present, laid out in this order
    std::uint8_t fill = 0x11;                      // data byte of block k: fill + k
    vhd::Uuid id = id_of(1);
    vhd::Uuid parent_id{};
    std::string parent_name;
    std::vector<Locator> locators;
    std::vector<std::byte> bitmap;  // differencing: bitmap of every block (default all set)
};

struct Built {
    std::vector<std::byte> bytes;
    std::vector<std::uint64_t> block_at;  // file offset of each allocated block (bitmap first)
};

void put_footer(std::vector<std::byte> &b, std::uint64_t at, const vhd::Footer &f) {
    std::array<std::byte, 512> raw{};
    vhd::serialize_footer(f, raw);
    std::memcpy(b.data() + at, raw.data(), raw.size());
}

// Copy at 0, header at 512, BAT at 1536, locator data, blocks, footer.
Built build_dynamic(const DynamicSpec &s) {
    const std::uint32_t entries = static_cast<std::uint32_t>((s.size + s.block_size - 1) / s.block_size);
    const std::uint64_t bitmap = std::max<std::uint64_t>(512, (s.block_size / 512 / 8 + 511) / 512 * 512);
    std::uint64_t pos = 1536 + (entries * 4 + 511) / 512 * 512;
    vhd::DynamicHeader h;
    h.table_offset = 1536;
    h.max_table_entries = entries;
    h.block_size = s.block_size;
    h.parent_id = s.parent_id;
    for (std::size_t i = 0; i < s.parent_name.size() && 2 * i + 1 < h.parent_name.size(); ++i)
        h.parent_name[2 * i + 1] = static_cast<std::byte>(s.parent_name[i]);  // UTF-16BE
    std::vector<std::pair<std::uint64_t, std::vector<std::byte>>> blobs;
    for (std::size_t i = 0; i < s.locators.size(); ++i) {
        std::vector<std::byte> data;
        for (char c : s.locators[i].text) {
            data.push_back(static_cast<std::byte>(c));
            if (s.locators[i].code != "MacX") data.push_back(std::byte{0});
        }
        auto &l = h.locators[i];
        std::memcpy(l.platform.data(), s.locators[i].code.data(), 4);
        l.data_length = static_cast<std::uint32_t>(data.size());
        l.data_space = static_cast<std::uint32_t>((data.size() + 511) / 512);
        l.data_offset = pos;
        pos += std::uint64_t{l.data_space} * 512;
        blobs.emplace_back(l.data_offset, std::move(data));
    }
    Built img;
    std::vector<std::uint32_t> bat(entries, vhd::bat_unallocated);
    for (auto k : s.allocated) {
        bat[k] = static_cast<std::uint32_t>(pos / 512);
        img.block_at.push_back(pos);
        pos += bitmap + s.block_size;
    }
    img.bytes.assign(pos + 512, std::byte{0});
    auto &b = img.bytes;
    vhd::Footer f = make_footer(s.size, s.type, s.id);
    put_footer(b, 0, f);
    put_footer(b, pos, f);
    std::array<std::byte, 1024> raw{};
    vhd::serialize_dynamic_header(h, raw);
    std::memcpy(b.data() + 512, raw.data(), raw.size());
    for (std::uint32_t i = 0; i < entries; ++i) store_be<std::uint32_t>(b.data() + 1536 + 4 * i, bat[i]);
    for (std::size_t i = 0; i < (entries * 4 + 511) / 512 * 512 - entries * 4; ++i) b[1536 + entries * 4 + i] = std::byte{0xFF};
    for (const auto &[at, data] : blobs)
        if (!data.empty()) std::memcpy(b.data() + at, data.data(), data.size());
    for (std::size_t n = 0; n < s.allocated.size(); ++n) {
        const auto at = img.block_at[n];
        if (s.bitmap.empty()) std::memset(b.data() + at, 0xFF, bitmap);
        else std::memcpy(b.data() + at, s.bitmap.data(), std::min<std::size_t>(bitmap, s.bitmap.size()));
        std::memset(b.data() + at + bitmap, s.fill + static_cast<int>(s.allocated[n]), s.block_size);
    }
    return img;
}

// Rewrites the dynamic header through `edit`, keeping its checksum right.
template <class F>
void edit_header(Built &img, F edit) {
    std::span<std::byte, 1024> raw(img.bytes.data() + 512, 1024);
    auto h = vhd::parse_dynamic_header(raw);
    edit(h);
    vhd::serialize_dynamic_header(h, raw);
}

// Rewrites both footers through `edit`, keeping their checksums right.
template <class F>
void edit_footers(Built &img, F edit) {
    for (std::uint64_t at : {std::uint64_t{0}, img.bytes.size() - 512}) {
        std::span<std::byte, 512> raw(img.bytes.data() + at, 512);
        auto f = vhd::parse_footer(raw);
        edit(f);
        vhd::serialize_footer(f, raw);
    }
}

Result<std::unique_ptr<format::Layer>> open_vhd(const std::string &path, bool allow_external = false) {
    OpenOptions o;
    o.allow_external_files = allow_external;
    return format::open_layer(path, "vhd", o);
}

void require_error(const Result<std::unique_ptr<format::Layer>> &r, Errc code, const std::string &text) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == code);
    INFO(r.error().message);
    CHECK(r.error().message.find(text) != std::string::npos);
}

void require_error(const Result<std::unique_ptr<Image>> &r, Errc code, const std::string &text) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == code);
    INFO(r.error().message);
    CHECK(r.error().message.find(text) != std::string::npos);
}

std::vector<std::byte> read_all(format::Layer &layer) {
    std::vector<std::byte> out(static_cast<std::size_t>(layer.virtual_size()));
    REQUIRE(layer.read(0, out));
    return out;
}

}  // namespace

TEST_CASE("VHD geometry follows the specification and the size rule follows qemu-img 7.2") {
    auto g = vhd::geometry_for_sectors(10 * MiB / 512);
    CHECK(g.sectors_per_track == 17);
    CHECK(g.heads == 4);
    CHECK(g.cylinders == 301);
    g = vhd::geometry_for_sectors(200ULL << 30 >> 9);  // beyond the largest geometry: clamped
    CHECK(g.total_sectors() == vhd::max_geometry_sectors);
    vhd::Footer f = make_footer(10 * MiB, vhd::DiskType::fixed, id_of(1));
    CHECK(vhd::virtual_size_of(f) == 10 * MiB);  // 'win '
    f.creator_app = {'v', 'p', 'c', ' '};
    CHECK(vhd::virtual_size_of(f) == 301ULL * 4 * 17 * 512);
    f.creator_app = {'t', 'a', 'p', '\0'};
    CHECK(vhd::virtual_size_of(f) == 10 * MiB);
    f.creator_app = {'t', 'a', 'p', ' '};
    CHECK(vhd::virtual_size_of(f) == 301ULL * 4 * 17 * 512);
    f.geometry = {65535, 16, 255};
    CHECK(vhd::virtual_size_of(f) == 10 * MiB);  // maximal geometry: current_size
}

TEST_CASE("VHD footers: too small, no cookie, bad checksum, unknown type, too large") {
    require_error(open_vhd(write_file("tiny.vhd", std::vector<std::byte>(100))), Errc::corrupt_image, "too small");
    require_error(open_vhd(write_file("nocookie.vhd", std::vector<std::byte>(4096))), Errc::corrupt_image, "no VHD footer");

    std::vector<std::byte> fixed(MiB + 512);
    put_footer(fixed, MiB, make_footer(MiB, vhd::DiskType::fixed, id_of(2)));
    REQUIRE(open_vhd(write_file("fixed.vhd", fixed)));
    auto bad = fixed;
    bad[MiB + 50] ^= std::byte{1};
    require_error(open_vhd(write_file("badsum.vhd", bad)), Errc::corrupt_image, "checksum mismatch at offset 0x100000");

    auto f = make_footer(MiB, vhd::DiskType::fixed, id_of(2));
    f.disk_type = 5;
    put_footer(bad = fixed, MiB, f);
    require_error(open_vhd(write_file("type5.vhd", bad)), Errc::unsupported, "disk type 5");

    f = make_footer(3ULL << 40, vhd::DiskType::fixed, id_of(2));  // 3 TiB in a 1 MiB file
    put_footer(bad = fixed, MiB, f);
    require_error(open_vhd(write_file("huge.vhd", bad)), Errc::unsupported, "2040 GiB");

    f = make_footer(2 * MiB, vhd::DiskType::fixed, id_of(2));  // declares more data than it holds
    put_footer(bad = fixed, MiB, f);
    require_error(open_vhd(write_file("short.vhd", bad)), Errc::corrupt_image, "declares a 2097152-byte disk");
}

TEST_CASE("VHD: a damaged end footer falls back to the copy at offset 0, and check() says so") {
    Built img = build_dynamic({});
    img.bytes[img.bytes.size() - 512] = std::byte{'X'};
    auto layer = open_vhd(write_file("endfooter.vhd", img.bytes));
    REQUIRE(layer);
    CHECK(layer.value()->info().format_specific["footer"].get<std::string>().find("copy at offset 0") != std::string::npos);
    auto data = read_all(*layer.value());
    CHECK(data[0] == std::byte{0x11});
    CHECK(data[3 * MiB] == std::byte{0});
    auto report = layer.value()->check();
    REQUIRE(report);
    CHECK(report.value().corruptions == 1);

    // A fixed disk keeps no copy: "conectix" at offset 0 of a fixed disk's data is not a footer.
    std::vector<std::byte> fixed(MiB + 512);
    put_footer(fixed, 0, make_footer(MiB, vhd::DiskType::fixed, id_of(3)));
    require_error(open_vhd(write_file("fixedcopy.vhd", fixed)), Errc::corrupt_image, "fixed disk");
}

TEST_CASE("VHD dynamic header: offsets outside the file or pointing back at the footer") {
    for (std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{100}, std::uint64_t{1} << 40, vhd::no_data_offset}) {
        Built img = build_dynamic({});
        edit_footers(img, [&](vhd::Footer &f) { f.data_offset = offset; });
        require_error(open_vhd(write_file("hdroff.vhd", img.bytes)), Errc::corrupt_image, "dynamic disk header offset");
    }
    Built img = build_dynamic({});
    edit_footers(img, [&](vhd::Footer &f) { f.data_offset = 1536; });  // the BAT, not a header
    require_error(open_vhd(write_file("nocx.vhd", img.bytes)), Errc::corrupt_image, "'cxsparse'");
}

TEST_CASE("VHD block size zero, not a power of two, or below a sector") {
    for (std::uint32_t bs : {0U, 1000U, 256U, 3U << 20}) {
        Built img = build_dynamic({});
        edit_header(img, [&](vhd::DynamicHeader &h) { h.block_size = bs; });
        require_error(open_vhd(write_file("bs.vhd", img.bytes)), Errc::corrupt_image, "not a power of two");
    }
    Built img = build_dynamic({});  // a legal but absurd 2 GiB block cannot fit this file
    edit_header(img, [&](vhd::DynamicHeader &h) { h.block_size = 1U << 31; });
    require_error(open_vhd(write_file("bigbs.vhd", img.bytes)), Errc::corrupt_image, "extends beyond the end of the file");
}

TEST_CASE("VHD BAT: too few entries, absurd counts, unaligned, beyond the end of the file") {
    Built img = build_dynamic({});
    edit_header(img, [&](vhd::DynamicHeader &h) { h.max_table_entries = 1; });
    require_error(open_vhd(write_file("fewbat.vhd", img.bytes)), Errc::corrupt_image, "too few");

    img = build_dynamic({});
    edit_header(img, [&](vhd::DynamicHeader &h) { h.max_table_entries = 0xFFFFFFFF; });
    require_error(open_vhd(write_file("hugebat.vhd", img.bytes)), Errc::corrupt_image, "larger than 256 MiB");

    img = build_dynamic({});
    edit_header(img, [&](vhd::DynamicHeader &h) { h.max_table_entries = 1U << 20; });  // 4 MiB: more than the file
    require_error(open_vhd(write_file("longbat.vhd", img.bytes)), Errc::corrupt_image, "BAT (1048576 entries at offset 0x600)");

    img = build_dynamic({});
    edit_header(img, [&](vhd::DynamicHeader &h) { h.table_offset = 1537; });
    require_error(open_vhd(write_file("unaligned.vhd", img.bytes)), Errc::corrupt_image, "not sector-aligned");

    img = build_dynamic({});
    store_be<std::uint32_t>(img.bytes.data() + 1536, 0x7FFFFFFF);  // block 0 at 1 TiB
    require_error(open_vhd(write_file("batpast.vhd", img.bytes)), Errc::corrupt_image, "BAT entry 0 points to a block at offset 0xfffffffe00");

    img = build_dynamic({});
    // The bitmap fits, the data does not: points at the last sector (the footer).
    store_be<std::uint32_t>(img.bytes.data() + 1536, static_cast<std::uint32_t>(img.bytes.size() / 512 - 1));
    require_error(open_vhd(write_file("bitmappast.vhd", img.bytes)), Errc::corrupt_image, "BAT entry 0");
}

TEST_CASE("VHD dynamic: allocated blocks are data, holes elsewhere, reads stay in range") {
    DynamicSpec s;
    s.size = 5 * MiB + 512;
    s.allocated = {2, 0};
    Built img = build_dynamic(s);
    auto layer = open_vhd(write_file("dyn.vhd", img.bytes));
    REQUIRE(layer);
    auto &l = *layer.value();
    CHECK(l.virtual_size() == 5 * MiB + 512);
    std::vector<Extent> runs;
    REQUIRE(l.layer_status(0, l.virtual_size(), runs));
    REQUIRE(runs.size() == 3);
    CHECK(runs[0].kind == ExtentKind::data);
    CHECK(runs[0].host_offset == img.block_at[1] + 512);
    CHECK(runs[1].kind == ExtentKind::hole);
    CHECK(runs[2].kind == ExtentKind::data);
    CHECK(runs[2].length == MiB + 512);
    auto data = read_all(l);
    CHECK(data[5] == std::byte{0x11});
    CHECK(data[2 * MiB + 5] == std::byte{0});
    CHECK(data[5 * MiB + 100] == std::byte{0x13});
    std::vector<std::byte> buf(1024);
    CHECK(l.read(l.virtual_size() - 512, buf).error().code == Errc::invalid_argument);
    auto report = l.check();
    REQUIRE(report);
    CHECK(report.value().corruptions == 0);
    CHECK(report.value().allocated_clusters == 2);
    CHECK(report.value().total_clusters == 3);
}

TEST_CASE("VHD check(): overlapping blocks, blocks over metadata, footer copy, header checksum") {
    DynamicSpec two;
    two.allocated = {0, 1};
    Built img = build_dynamic(two);
    store_be<std::uint32_t>(img.bytes.data() + 1540, static_cast<std::uint32_t>(img.block_at[0] / 512 + 8));
    auto layer = open_vhd(write_file("overlap.vhd", img.bytes));
    REQUIRE(layer);
    auto r = layer.value()->check();
    REQUIRE(r);
    CHECK(r.value().corruptions == 1);
    CHECK(r.value().messages.at(0).find("overlaps block 0") != std::string::npos);

    img = build_dynamic({});
    store_be<std::uint32_t>(img.bytes.data() + 1536, 1);  // block 0 over the header and the BAT
    layer = open_vhd(write_file("overmeta.vhd", img.bytes));
    REQUIRE(layer);
    r = layer.value()->check();
    REQUIRE(r);
    CHECK(r.value().corruptions >= 1);

    img = build_dynamic({});
    {
        std::span<std::byte, 512> copy(img.bytes.data(), 512);
        auto f = vhd::parse_footer(copy);
        f.timestamp = 42;  // valid but different
        vhd::serialize_footer(f, copy);
    }
    img.bytes[512 + 36] ^= std::byte{0xFF};  // header checksum
    layer = open_vhd(write_file("copydiff.vhd", img.bytes));
    REQUIRE(layer);
    r = layer.value()->check();
    REQUIRE(r);
    CHECK(r.value().corruptions == 2);
}

namespace {

// parent.vhd (dynamic, blocks 0 and 1 = 0x11 / 0x12) and child.vhd (differencing, block 1 with
// a bitmap selecting sectors 1, 2 and 9 = 0x21) in `folder`.
struct Chain {
    std::string parent, child;
};

Chain make_chain(const std::string &folder_name, const std::vector<Locator> &locators, vhd::Uuid parent_id = id_of(1),
                 const std::string &parent_name = "parent.vhd") {
    const std::string folder = work(folder_name);
    ::mkdir(folder.c_str(), 0755);
    DynamicSpec p;
    p.allocated = {0, 1};
    DynamicSpec c;
    c.type = vhd::DiskType::differencing;
    c.id = id_of(50);
    c.parent_id = parent_id;
    c.parent_name = parent_name;
    c.locators = locators;
    c.allocated = {1};
    c.fill = 0x20;
    c.bitmap.assign(512, std::byte{0});
    c.bitmap[0] = std::byte{0x60};  // sectors 1, 2
    c.bitmap[1] = std::byte{0x40};  // sector 9
    return {write_file(folder_name + "/parent.vhd", build_dynamic(p).bytes), write_file(folder_name + "/child.vhd", build_dynamic(c).bytes)};
}

}  // namespace

TEST_CASE("VHD differencing: bitmaps pick sectors, the parent shows through elsewhere") {
    auto chain = make_chain("diff-ok", {{"W2ru", ".\\parent.vhd"}, {"W2ku", "C:\\VMs\\parent.vhd"}});
    auto image = open_image(chain.child);
    REQUIRE(image);
    auto &dev = *image.value();
    std::vector<std::byte> data(static_cast<std::size_t>(dev.virtual_size()));
    REQUIRE(dev.read(0, data));
    const std::uint64_t b1 = 2 * MiB;
    CHECK(data[0] == std::byte{0x11});
    CHECK(data[b1 + 0] == std::byte{0x12});
    CHECK(data[b1 + 512] == std::byte{0x21});
    CHECK(data[b1 + 2 * 512 + 511] == std::byte{0x21});
    CHECK(data[b1 + 3 * 512] == std::byte{0x12});
    CHECK(data[b1 + 9 * 512] == std::byte{0x21});
    CHECK(data[b1 + 10 * 512] == std::byte{0x12});
    auto runs = dev.block_status(b1, 16 * 512);
    REQUIRE(runs);
    REQUIRE(runs.value().size() == 5);
    CHECK(runs.value()[0].depth == 1);
    CHECK(runs.value()[1].depth == 0);
    CHECK(runs.value()[1].length == 1024);
    // Unaligned reads inside sectors.
    std::vector<std::byte> small(700);
    REQUIRE(dev.read(b1 + 300, small));
    CHECK(small[0] == std::byte{0x12});
    CHECK(small[699] == std::byte{0x21});
    CHECK(image.value()->info().backing_filename == "parent.vhd");
}

TEST_CASE("VHD differencing: parent references are policed") {
    SUBCASE("absolute Windows path (W2ku only)") {
        auto chain = make_chain("diff-abs", {{"W2ku", "C:\\VMs\\parent.vhd"}});
        require_error(open_image(chain.child), Errc::permission_denied, "'/VMs/parent.vhd' is an absolute path");
    }
    SUBCASE("file URL (MacX) is absolute too") {
        auto chain = make_chain("diff-macx", {{"MacX", "file:///srv/parent%20disk.vhd"}});
        require_error(open_image(chain.child), Errc::permission_denied, "'/srv/parent disk.vhd' is an absolute path");
    }
    SUBCASE("relative path climbing out") {
        auto chain = make_chain("diff-dotdot", {{"W2ru", "..\\diff-up\\parent.vhd"}});
        require_error(open_image(chain.child), Errc::permission_denied, "'..'");
        OpenOptions o;
        o.allow_external_files = true;
        // Its own folder: test cases run in parallel processes and "diff-ok" belongs to another.
        make_chain("diff-up", {{"W2ru", ".\\parent.vhd"}});
        CHECK(open_image(chain.child, o));
    }
    SUBCASE("unique id mismatch names both ids") {
        auto chain = make_chain("diff-uuid", {{"W2ru", ".\\parent.vhd"}}, id_of(9));
        auto r = open_image(chain.child);
        require_error(r, Errc::corrupt_image, vhd::uuid_string(id_of(9)));
        CHECK(r.error().message.find(vhd::uuid_string(id_of(1))) != std::string::npos);
    }
    SUBCASE("no locator: the parent's name is used, in the same folder") {
        auto chain = make_chain("diff-name", {});
        CHECK(open_image(chain.child));
    }
    SUBCASE("no locator and no name") {
        auto chain = make_chain("diff-none", {}, id_of(1), "");
        require_error(open_vhd(chain.child), Errc::corrupt_image, "does not say where its parent is");
    }
    SUBCASE("parent is not a VHD") {
        auto chain = make_chain("diff-raw", {{"W2ru", "parent.raw"}});
        write_file("diff-raw/parent.raw", std::vector<std::byte>(4 * MiB));
        require_error(open_image(chain.child), Errc::corrupt_image, "no VHD footer");
    }
}

TEST_CASE("VHD differencing: parent chains that loop are refused") {
    const std::string folder = work("diff-loop");
    ::mkdir(folder.c_str(), 0755);
    DynamicSpec a;
    a.type = vhd::DiskType::differencing;
    a.id = id_of(1);
    a.parent_id = id_of(2);
    a.locators = {{"W2ru", "b.vhd"}};
    DynamicSpec b = a;
    b.id = id_of(2);
    b.parent_id = id_of(1);
    b.locators = {{"W2ru", "a.vhd"}};
    write_file("diff-loop/a.vhd", build_dynamic(a).bytes);
    write_file("diff-loop/b.vhd", build_dynamic(b).bytes);
    require_error(open_image(folder + "/a.vhd"), Errc::corrupt_image, "loops");
    DynamicSpec self = a;
    self.parent_id = id_of(1);
    self.locators = {{"W2ru", ".\\self.vhd"}};
    write_file("diff-loop/self.vhd", build_dynamic(self).bytes);
    require_error(open_image(folder + "/self.vhd"), Errc::corrupt_image, "loops");
}

TEST_CASE("VHD differencing: locator lengths and offsets are bounded") {
    DynamicSpec c;
    c.type = vhd::DiskType::differencing;
    c.locators = {{"W2ru", ".\\parent.vhd"}};
    Built img = build_dynamic(c);
    edit_header(img, [](vhd::DynamicHeader &h) { h.locators[0].data_length = 0x7FFFFFFF; });
    require_error(open_vhd(write_file("loclen.vhd", img.bytes)), Errc::corrupt_image, "claims 2147483647 bytes");
    img = build_dynamic(c);
    edit_header(img, [](vhd::DynamicHeader &h) { h.locators[0].data_offset = 1ULL << 50; });
    require_error(open_vhd(write_file("locoff.vhd", img.bytes)), Errc::corrupt_image, "beyond the end of the file");
    // Empty locators (found by the fuzzer: an empty MacX locator) are skipped.
    c.locators = {{"MacX", ""}, {"W2ru", ""}};
    c.parent_name = "base.vhd";
    auto layer = open_vhd(write_file("locempty.vhd", build_dynamic(c).bytes));
    REQUIRE(layer);
    CHECK(layer.value()->backing()->path == "base.vhd");
}

TEST_CASE("VHD locator text decoding") {
    CHECK(vhd::windows_path_to_posix(".\\a\\b.vhd") == "a/b.vhd");
    CHECK(vhd::windows_path_to_posix("C:\\VMs\\b.vhd") == "/VMs/b.vhd");
    CHECK(vhd::windows_path_to_posix("\\\\server\\share\\b.vhd") == "//server/share/b.vhd");
    CHECK(vhd::windows_path_to_posix("..\\b.vhd") == "../b.vhd");
    CHECK(vhd::file_url_to_path("file://localhost/x/y%20z.vhd") == "/x/y z.vhd");
    CHECK_FALSE(vhd::file_url_to_path("file://otherhost/x.vhd"));
    CHECK_FALSE(vhd::file_url_to_path("http://x/y"));
    const std::vector<std::byte> utf16 = {std::byte{0x3d}, std::byte{0xd8}, std::byte{0x00}, std::byte{0xde},  // U+1F600
                                          std::byte{'a'}, std::byte{0}, std::byte{0x00}, std::byte{0xd8}};     // lone surrogate
    CHECK(vhd::utf16_to_utf8(utf16, false) == "\xF0\x9F\x98\x80" "a\xEF\xBF\xBD");
}

TEST_CASE("VHD fixed: holes of a sparse file are reported as zeros, data keeps its offset") {
    const auto path = work("sparse-fixed.vhd");
    ::unlink(path.c_str());
    {
        std::ofstream f(path, std::ios::binary);
        std::vector<char> data(64 * 1024, 'd');
        f.write(data.data(), static_cast<std::streamsize>(data.size()));  // 64 KiB of data, then a hole
    }
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(4 * MiB)) == 0);
    {
        std::vector<std::byte> footer(512);
        put_footer(footer, 0, make_footer(4 * MiB, vhd::DiskType::fixed, id_of(7)));
        std::ofstream f(path, std::ios::binary | std::ios::app);
        f.write(reinterpret_cast<const char *>(footer.data()), 512);
    }
    auto layer = open_vhd(path);
    REQUIRE(layer);
    std::vector<Extent> runs;
    REQUIRE(layer.value()->layer_status(0, 4 * MiB, runs));
    REQUIRE(runs.size() >= 1);
    CHECK(runs[0].kind == ExtentKind::data);
    CHECK(runs[0].host_offset == 0);
    std::uint64_t covered = 0, zeros = 0;
    for (const auto &r : runs) {
        CHECK(r.offset == covered);
        covered += r.length;
        if (r.kind == ExtentKind::zero) zeros += r.length;
    }
    CHECK(covered == 4 * MiB);
    // File systems without SEEK_HOLE report it all as data; the ones we run on have it.
    CHECK(zeros >= 3 * MiB);
}
