// VHDX driver: CRC-32C, GUIDs, the log overlay, and hostile images built in code (broken headers,
// region tables, metadata, BAT, logs, parent locators).
#include "core/endian.hpp"
#include "format/layer.hpp"
#include "format/vhdx/constants.hpp"
#include "format/vhdx/crc32c.hpp"
#include "format/vhdx/guid.hpp"
#include "format/vhdx/image_file.hpp"
#include "format/vhdx/utf16.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace hypersdk;
using namespace hypersdk::format::vhdx;

namespace {

std::string work(const std::string &name) { return std::string(HSDK_TEST_WORK_DIR) + "/vhdx-" + name; }

std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> v(s.size());
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}

std::vector<std::byte> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(c.size());
    std::memcpy(out.data(), c.data(), c.size());
    return out;
}

void write_file(const std::string &path, const std::vector<std::byte> &data) {
    ::unlink(path.c_str());
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::byte> v(n);
    for (auto &b : v) b = static_cast<std::byte>(rng() & 0xFF);
    return v;
}

// A raw disk of `size` bytes with pattern data at the given (offset, length) places.
std::vector<std::byte> make_disk(std::uint64_t size, std::vector<std::pair<std::uint64_t, std::size_t>> data, unsigned seed) {
    std::vector<std::byte> disk(size);
    for (auto [off, len] : data) {
        auto p = pattern(len, seed++);
        std::memcpy(disk.data() + off, p.data(), len);
    }
    return disk;
}

// Converts `disk` to a VHDX with our writer. Layout (small disks): log at 1 MiB, BAT at 2 MiB,
// metadata at 3 MiB (items from 3 MiB + 64 KiB), payload blocks from 4 MiB in write order.
std::string make_vhdx(const std::string &name, const std::vector<std::byte> &disk, const std::string &options = "block_size=1M") {
    const std::string raw = work(name + ".raw");
    write_file(raw, disk);
    const std::string out = work(name);
    ::unlink(out.c_str());
    ConvertOptions co;
    co.output_format = "vhdx";
    co.format_options = parse_format_options(options).value();
    OpenOptions ro;
    ro.format = "raw";
    auto r = convert(raw, ro, out, co);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    ::unlink(raw.c_str());
    return out;
}

constexpr std::uint64_t bat_at = 2 * MiB;
constexpr std::uint64_t metadata_at = 3 * MiB;
constexpr std::uint64_t items_at = metadata_at + 64 * KiB;  // file params, size, page83, lss, pss
constexpr std::uint64_t data_at = 4 * MiB;

// Editing an image's bytes, keeping (or deliberately breaking) checksums.
struct Img {
    std::vector<std::byte> b;
    explicit Img(const std::string &path) : b(read_file(path)) {}
    std::uint32_t u32(std::uint64_t off) const { return le32(b.data(), off); }
    std::uint64_t u64(std::uint64_t off) const { return le64(b.data(), off); }
    void put16(std::uint64_t off, std::uint16_t v) { store_le<std::uint16_t>(b.data() + off, v); }
    void put32(std::uint64_t off, std::uint32_t v) { store_le<std::uint32_t>(b.data() + off, v); }
    void put64(std::uint64_t off, std::uint64_t v) { store_le<std::uint64_t>(b.data() + off, v); }
    void put(std::uint64_t off, std::span<const std::byte> data) {
        if (b.size() < off + data.size()) b.resize(off + data.size());
        std::memcpy(b.data() + off, data.data(), data.size());
    }
    void fix_crc(std::uint64_t off, std::size_t size) {
        put32(off + 4, crc32c_with_zeroed_field(std::span(b).subspan(off, size), 4));
    }
    void fix_headers() {
        fix_crc(header1_offset, header_size);
        fix_crc(header2_offset, header_size);
    }
    void fix_region_tables() {
        fix_crc(region_table1_offset, region_table_size);
        fix_crc(region_table2_offset, region_table_size);
    }
    // Same change to both region tables.
    void region_put64(std::uint64_t rel, std::uint64_t v) {
        put64(region_table1_offset + rel, v);
        put64(region_table2_offset + rel, v);
        fix_region_tables();
    }
    void region_put32(std::uint64_t rel, std::uint32_t v) {
        put32(region_table1_offset + rel, v);
        put32(region_table2_offset + rel, v);
        fix_region_tables();
    }
    void bat(std::uint64_t index, std::uint64_t entry) { put64(bat_at + index * 8, entry); }
    void save(const std::string &path) const { write_file(path, b); }
};

Result<std::unique_ptr<Image>> open(const std::string &path, bool allow_external = false) {
    OpenOptions o;
    o.allow_external_files = allow_external;
    return open_image(path, o);
}

std::vector<std::byte> read_all(Image &img) {
    std::vector<std::byte> out(img.virtual_size());
    auto r = img.read(0, out);
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    return out;
}

void check_error(const Result<std::unique_ptr<Image>> &r, Errc code, const std::string &needle) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == code);
    CHECK_MESSAGE(r.error().message.find(needle) != std::string::npos, r.error().message);
}

Result<CheckReport> check(const std::string &path) {
    OpenOptions o;
    o.format = "vhdx";
    return check_image(path, o);
}

// One log entry per [MS-VHDX] 2.3.1, like gen_vhdx.py builds them.
struct LogWrite {
    bool zero;
    std::uint64_t offset;
    std::vector<std::byte> data;  // 4 KiB for data writes
    std::uint64_t zero_length = 0;
};

std::vector<std::byte> log_entry(std::uint64_t seq, std::uint32_t tail, const Guid &guid, const std::vector<LogWrite> &writes,
                                 std::uint64_t flushed, std::uint64_t last) {
    const std::size_t count = writes.size();
    const std::size_t desc_sectors = (count + 2 + 127) / 128;
    std::size_t data_sectors = 0;
    for (const auto &w : writes) data_sectors += w.zero ? 0 : 1;
    std::vector<std::byte> e((desc_sectors + data_sectors) * 4096);
    std::memcpy(e.data(), "loge", 4);
    store_le<std::uint32_t>(e.data() + 8, static_cast<std::uint32_t>(e.size()));
    store_le<std::uint32_t>(e.data() + 12, tail);
    store_le<std::uint64_t>(e.data() + 16, seq);
    store_le<std::uint32_t>(e.data() + 24, static_cast<std::uint32_t>(count));
    guid.write(e.data() + 32);
    store_le<std::uint64_t>(e.data() + 48, flushed);
    store_le<std::uint64_t>(e.data() + 56, last);
    std::size_t sector = desc_sectors;
    for (std::size_t i = 0; i < count; ++i) {
        std::byte *d = e.data() + 64 + i * 32;
        const auto &w = writes[i];
        store_le<std::uint64_t>(d + 16, w.offset);
        store_le<std::uint64_t>(d + 24, seq);
        if (w.zero) {
            std::memcpy(d, "zero", 4);
            store_le<std::uint64_t>(d + 8, w.zero_length);
        } else {
            std::memcpy(d, "desc", 4);
            std::memcpy(d + 4, w.data.data() + 4092, 4);
            std::memcpy(d + 8, w.data.data(), 8);
            std::byte *s = e.data() + sector * 4096;
            std::memcpy(s, "data", 4);
            store_le<std::uint32_t>(s + 4, static_cast<std::uint32_t>(seq >> 32));
            std::memcpy(s + 8, w.data.data() + 8, 4084);
            store_le<std::uint32_t>(s + 4092, static_cast<std::uint32_t>(seq));
            ++sector;
        }
    }
    store_le<std::uint32_t>(e.data() + 4, crc32c_with_zeroed_field(e, 4));
    return e;
}

void set_log_guid(Img &img, const Guid &g) {
    g.write(img.b.data() + header1_offset + 48);
    g.write(img.b.data() + header2_offset + 48);
    img.fix_headers();
}

std::vector<std::byte> parent_locator_item(const std::vector<std::pair<std::string, std::string>> &kv,
                                           const Guid &type = vhdx_parent_locator_type) {
    std::vector<std::byte> item(20 + 12 * kv.size());
    type.write(item.data());
    store_le<std::uint16_t>(item.data() + 18, static_cast<std::uint16_t>(kv.size()));
    for (std::size_t i = 0; i < kv.size(); ++i) {
        auto k = utf8_to_utf16le(kv[i].first), v = utf8_to_utf16le(kv[i].second);
        std::byte *e = item.data() + 20 + 12 * i;
        store_le<std::uint32_t>(e, static_cast<std::uint32_t>(item.size()));
        store_le<std::uint32_t>(e + 4, static_cast<std::uint32_t>(item.size() + k.size()));
        store_le<std::uint16_t>(e + 8, static_cast<std::uint16_t>(k.size()));
        store_le<std::uint16_t>(e + 10, static_cast<std::uint16_t>(v.size()));
        item.insert(item.end(), k.begin(), k.end());
        item.insert(item.end(), v.begin(), v.end());
    }
    return item;
}

// Turns a writer-made dynamic image into a differencing one: HasParent, a Parent Locator item at
// metadata + 128 KiB, and a sector bitmap block (appended) for chunk 0.
void make_differencing(Img &img, const std::vector<std::byte> &locator) {
    img.put32(items_at + 4, img.u32(items_at + 4) | has_parent_flag);
    img.put16(metadata_at + 10, 6);
    const std::uint64_t e = metadata_at + 32 + 5 * 32;
    parent_locator_guid.write(img.b.data() + e);
    img.put32(e + 16, 128 * KiB);
    img.put32(e + 20, static_cast<std::uint32_t>(locator.size()));
    img.put32(e + 24, metadata_flag_is_required);
    img.put(metadata_at + 128 * KiB, locator);
}

std::uint64_t append_bitmap_block(Img &img, std::uint64_t chunk_ratio) {
    const std::uint64_t at = (img.b.size() + MiB - 1) / MiB * MiB;
    img.b.resize(at + MiB);
    img.bat(chunk_ratio, at | sector_bitmap_present);
    return at;
}

std::string data_write_guid(const std::string &path) {
    auto img = open_image(path).value();
    return img->info().format_specific["data-write-guid"].get<std::string>();
}

}  // namespace

// ---- building blocks ------------------------------------------------------------------------

TEST_CASE("CRC-32C known answer and the ISA-L convention") {
    const auto s = bytes_of("123456789");
    CHECK(crc32c(s) == 0xE3069283u);
    Crc32c c;
    c.update(std::span(s).first(4));
    c.update(std::span(s).subspan(4));
    CHECK(c.value() == 0xE3069283u);
    CHECK(crc32c({}) == 0u);
    // The field-zeroing form equals the CRC of a copy with the field cleared.
    auto buf = pattern(4096, 3);
    auto copy = buf;
    std::memset(copy.data() + 4, 0, 4);
    CHECK(crc32c_with_zeroed_field(buf, 4) == crc32c(copy));
}

TEST_CASE("GUIDs: on-disk layout, parsing and printing") {
    CHECK(bat_region_guid.bytes[0] == std::byte{0x66});
    CHECK(bat_region_guid.bytes[3] == std::byte{0x2D});
    CHECK(bat_region_guid.bytes[8] == std::byte{0x9D});
    CHECK(bat_region_guid.to_string() == "2dc27766-f623-4200-9d64-115e9bfd4a08");
    CHECK(Guid::parse("{2DC27766-F623-4200-9D64-115E9BFD4A08}") == bat_region_guid);
    CHECK(Guid::parse("2dc27766-f623-4200-9d64-115e9bfd4a08") == bat_region_guid);
    CHECK_FALSE(Guid::parse("2dc27766-f623-4200-9d64-115e9bfd4a0"));
    CHECK_FALSE(Guid::parse("2dc27766-f623-4200-9d64x115e9bfd4a08"));
    CHECK_FALSE(Guid::parse("{2dc27766-f623-4200-9d64-115e9bfd4a08"));
    const Guid r = Guid::random();
    CHECK_FALSE(r.is_zero());
    CHECK(Guid::parse(r.to_string()) == r);
}

TEST_CASE("UTF-16LE decoding refuses broken text") {
    const auto encoded = utf8_to_utf16le("a\xC3\xA9\xF0\x9F\x98\x80.vhdx");  // a, e-acute, an emoji
    CHECK(utf16le_to_utf8(encoded) == std::optional<std::string>("a\xC3\xA9\xF0\x9F\x98\x80.vhdx"));
    std::vector<std::byte> lone = {std::byte{0x00}, std::byte{0xD8}, std::byte{'a'}, std::byte{0}};
    CHECK_FALSE(utf16le_to_utf8(lone));
    std::vector<std::byte> nul = {std::byte{'a'}, std::byte{0}, std::byte{0}, std::byte{0}};
    CHECK_FALSE(utf16le_to_utf8(nul));
    CHECK(utf16le_to_utf8(nul, true) == std::optional<std::string>("a"));
    CHECK_FALSE(utf16le_to_utf8(std::span(nul).first(3)));
}

TEST_CASE("log overlay: later writes win, splits keep the rest") {
    std::vector<std::byte> model(64 * 1024, std::byte{0x11});
    Overlay ov;
    std::mt19937 rng(5);
    for (int i = 0; i < 300; ++i) {
        const std::uint64_t off = (rng() % 14) * 4096;  // runs end inside the 64 KiB model
        const std::uint64_t len = (1 + rng() % 3) * 4096;
        if (rng() % 3 == 0) {
            ov.zero(off, len);
            std::memset(model.data() + off, 0, len);
        } else {
            auto data = pattern(4096, static_cast<unsigned>(i));
            std::memcpy(model.data() + off, data.data(), 4096);
            ov.write(off, std::move(data));
        }
    }
    std::vector<std::byte> view(64 * 1024, std::byte{0x11});
    ov.patch(0, view);
    CHECK(view == model);
    std::vector<std::byte> part(5000, std::byte{0x11});
    ov.patch(3000, part);
    CHECK(std::memcmp(part.data(), model.data() + 3000, part.size()) == 0);
}

// ---- valid images ---------------------------------------------------------------------------

TEST_CASE("writer output reads back, dynamic and fixed, 512 and 4096-byte sectors") {
    const auto disk = make_disk(5 * MiB + 4096, {{0, 700}, {MiB + 4095, 9000}, {4 * MiB + 10, 3000}}, 1);
    for (const char *opts : {"block_size=1M", "subformat=fixed,block_size=1M", "logical_sector_size=4096,block_size=2M",
                             "subformat=fixed,logical_sector_size=4096"}) {
        CAPTURE(opts);
        const auto path = make_vhdx("rt.vhdx", disk, opts);
        auto img = open(path);
        REQUIRE(img);
        CHECK(img.value()->virtual_size() == disk.size());
        CHECK(read_all(*img.value()) == disk);
        auto report = check(path);
        REQUIRE(report);
        CHECK(report.value().clean);
    }
}

TEST_CASE("the virtual size is rounded up to whole logical sectors") {
    const auto disk = make_disk(MiB + 100, {{MiB, 100}}, 2);
    auto img = open(make_vhdx("round.vhdx", disk, "logical_sector_size=4096"));
    REQUIRE(img);
    CHECK(img.value()->virtual_size() == MiB + 4096);
    auto all = read_all(*img.value());
    CHECK(std::memcmp(all.data(), disk.data(), disk.size()) == 0);
}

TEST_CASE("writer refuses bad options") {
    const auto disk = make_disk(MiB, {}, 3);
    write_file(work("opt.raw"), disk);
    for (const char *bad : {"block_size=3M", "block_size=128K", "block_size=1G", "logical_sector_size=1024",
                            "physical_sector_size=520", "subformat=differencing", "cluster_size=1M"}) {
        CAPTURE(bad);
        ConvertOptions co;
        co.output_format = "vhdx";
        co.format_options = parse_format_options(bad).value();
        OpenOptions ro;
        ro.format = "raw";
        auto r = convert(work("opt.raw"), ro, work("opt.vhdx"), co);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::invalid_argument);
    }
}

// ---- headers --------------------------------------------------------------------------------

TEST_CASE("headers: the valid one with the higher sequence number wins") {
    const auto disk = make_disk(2 * MiB, {{0, 4096}}, 4);
    const auto path = make_vhdx("hdr.vhdx", disk);
    const auto bad = work("hdr-bad.vhdx");
    {
        Img img(path);
        img.b[header2_offset + 100] ^= std::byte{1};  // header 2 (the current one) no longer validates
        img.save(bad);
        auto r = open(bad);
        REQUIRE(r);
        CHECK(r.value()->info().format_specific["active-header"] == 1);
        CHECK(read_all(*r.value()) == disk);
        auto report = check(bad);
        REQUIRE(report);
        CHECK(report.value().corruptions == 1);
        CHECK(report.value().messages.at(0).find("header 2 is invalid") != std::string::npos);
    }
    {
        Img img(path);
        img.put64(header1_offset + 8, 99);  // header 1 now has the higher sequence number
        Guid::parse("01234567-89ab-4def-8123-456789abcdef")->write(img.b.data() + header1_offset + 32);
        img.fix_headers();
        img.save(bad);
        auto r = open(bad);
        REQUIRE(r);
        CHECK(r.value()->info().format_specific["data-write-guid"] == "01234567-89ab-4def-8123-456789abcdef");
    }
    {
        Img img(path);
        img.b[header1_offset + 100] ^= std::byte{1};
        img.b[header2_offset] = std::byte{'x'};
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "no valid VHDX header");
    }
    {
        Img img(path);
        img.put64(header1_offset + 8, 2);  // same sequence number as header 2, different content
        img.put64(header1_offset + 72, 1 * MiB);
        img.put32(header1_offset + 68, 2 * MiB);
        img.fix_headers();
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "both VHDX headers have sequence number 2");
    }
    {
        Img img(path);
        img.put16(header1_offset + 66, 2);  // version 2
        img.put16(header2_offset + 66, 2);
        img.fix_headers();
        img.save(bad);
        check_error(open(bad), Errc::unsupported, "version 2");
    }
    {
        Img img(path);
        img.b.resize(200 * KiB);
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "too short");
    }
}

// ---- region tables --------------------------------------------------------------------------

TEST_CASE("region tables: checksums, unknown regions, bounds and overlaps") {
    const auto disk = make_disk(2 * MiB, {{MiB, 4096}}, 5);
    const auto path = make_vhdx("rt-src.vhdx", disk);
    const auto bad = work("rt-bad.vhdx");
    // Entries: 0 = BAT at 2 MiB, 1 = metadata at 3 MiB. Entry i at 16 + 32 i.
    {
        Img img(path);
        img.b[region_table1_offset + 5000] ^= std::byte{1};
        img.save(bad);
        auto r = open(bad);
        REQUIRE(r);  // the second copy is used
        CHECK(read_all(*r.value()) == disk);
        auto report = check(bad);
        REQUIRE(report);
        CHECK_FALSE(report.value().clean);
        img.b[region_table2_offset + 5000] ^= std::byte{1};
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "no valid region table");
    }
    {
        Img img(path);
        img.region_put32(8, 3);  // a third entry: unknown and required
        Guid::random().write(img.b.data() + region_table1_offset + 16 + 64);
        std::memcpy(img.b.data() + region_table2_offset + 16 + 64, img.b.data() + region_table1_offset + 16 + 64, 16);
        img.region_put64(16 + 64 + 16, 1 * MiB + 512 * KiB);
        img.region_put32(16 + 64 + 24, 64 * KiB);
        img.region_put32(16 + 64 + 28, 1);
        img.save(bad);
        check_error(open(bad), Errc::unsupported, "marked required");
        img.region_put32(16 + 64 + 28, 0);  // optional: ignored... except it overlaps the log
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "overlaps the log");
        img.b.resize(6 * MiB);
        img.region_put64(16 + 64 + 16, 5 * MiB);
        img.save(bad);
        REQUIRE(open(bad));
    }
    {
        Img img(path);
        img.region_put64(16 + 16, 1ull << 40);  // BAT far beyond the end of the file
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "beyond the end of the file");
    }
    {
        Img img(path);
        img.region_put64(16 + 16, 64 * KiB);  // BAT inside the header section
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "overlaps the header section");
    }
    {
        Img img(path);
        img.region_put64(16 + 32 + 16, 2 * MiB + 512 * KiB);  // metadata overlapping the BAT
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "overlaps the BAT region");
    }
    {
        Img img(path);
        img.region_put32(8, 1);  // only the BAT entry is left
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "no metadata region");
    }
    {
        Img img(path);
        img.region_put32(8, 4000);
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "4000 entries");
    }
}

// ---- metadata -------------------------------------------------------------------------------

TEST_CASE("metadata: item values and the table are validated") {
    const auto disk = make_disk(2 * MiB, {{0, 100}}, 6);
    const auto path = make_vhdx("md-src.vhdx", disk);
    const auto bad = work("md-bad.vhdx");
    auto broken = [&](auto edit, Errc code, const char *needle) {
        Img img(path);
        edit(img);
        img.save(bad);
        check_error(open(bad), code, needle);
    };
    broken([](Img &i) { i.put32(items_at, 3 * MiB); }, Errc::corrupt_image, "not a power of two");
    broken([](Img &i) { i.put32(items_at, 512 * KiB); }, Errc::corrupt_image, "block size");
    broken([](Img &i) { i.put32(items_at + 32, 1024); }, Errc::corrupt_image, "logical sector size 1024");
    broken([](Img &i) { i.put32(items_at + 36, 0); }, Errc::corrupt_image, "physical sector size 0");
    broken([](Img &i) { i.put64(items_at + 8, 2 * MiB + 100); }, Errc::corrupt_image, "not a multiple");
    broken([](Img &i) { i.put64(items_at + 8, 1ull << 50); }, Errc::corrupt_image, "64 TiB");
    broken([](Img &i) { std::memcpy(i.b.data() + metadata_at, "metadate", 8); }, Errc::corrupt_image, "signature");
    broken([](Img &i) { i.put16(metadata_at + 10, 2048); }, Errc::corrupt_image, "2048 entries");
    broken([](Img &i) { i.put32(metadata_at + 32 + 16, 2 * MiB); }, Errc::corrupt_image, "beyond the metadata region");
    broken([](Img &i) { i.put32(metadata_at + 32 + 16, 100); }, Errc::corrupt_image, "inside the metadata table");
    broken([](Img &i) { i.put32(metadata_at + 32 + 20, 2 * MiB); }, Errc::corrupt_image, "at most 1 MiB");
    broken([](Img &i) { i.put32(metadata_at + 32 + 32 + 20, 4); }, Errc::corrupt_image, "Virtual Disk Size is 4 bytes");
    // The Virtual Disk Size entry replaced by an unknown item.
    broken(
        [](Img &i) {
            Guid::random().write(i.b.data() + metadata_at + 64);
            i.put32(metadata_at + 64 + 24, 0);
        },
        Errc::corrupt_image, "no Virtual Disk Size");
    broken(
        [](Img &i) {
            Guid::random().write(i.b.data() + metadata_at + 64);
            i.put32(metadata_at + 64 + 24, metadata_flag_is_required);
        },
        Errc::unsupported, "marked required");
    broken([](Img &i) { std::memcpy(i.b.data() + metadata_at + 64, i.b.data() + metadata_at + 32, 16); },
           Errc::corrupt_image, "twice");
    broken([](Img &i) { i.put32(items_at + 4, has_parent_flag); }, Errc::corrupt_image, "no Parent Locator");
}

// ---- BAT ------------------------------------------------------------------------------------

TEST_CASE("BAT: bad entries fail the reads that need them and show in check") {
    const auto disk = make_disk(4 * MiB, {{0, 4096}, {2 * MiB, 4096}}, 7);
    const auto path = make_vhdx("bat-src.vhdx", disk);
    const auto bad = work("bat-bad.vhdx");
    // Blocks 0 and 2 are allocated at 4 MiB and 5 MiB.
    {
        Img good(path);
        REQUIRE(good.u64(bat_at) == (data_at | 6));
        REQUIRE(good.u64(bat_at + 16) == ((data_at + MiB) | 6));
    }
    struct Case {
        std::uint64_t entry;
        const char *needle;
    };
    for (const Case &c : {Case{(1ull << 40) | 6, "beyond the end of the file"}, Case{(64 * KiB) | 6, "header section"},
                          Case{(1 * MiB) | 6, "overlaps the log"}, Case{(metadata_at) | 6, "overlaps the metadata region"},
                          Case{(2 * MiB) | 6, "overlaps the BAT region"}, Case{(data_at + MiB) | 6, "overlaps another block"},
                          Case{data_at | 7, "PARTIALLY_PRESENT in a disk without a parent"},
                          Case{data_at | 4, "invalid state 4"}}) {
        CAPTURE(c.needle);
        Img img(path);
        img.bat(0, c.entry);
        img.save(bad);
        auto r = open(bad);
        REQUIRE(r);  // the table loads; the bad block cannot be read
        std::vector<std::byte> buf(4096);
        auto read = r.value()->read(0, buf);
        REQUIRE_FALSE(read);
        CHECK(read.error().code == Errc::corrupt_image);
        CHECK_MESSAGE(read.error().message.find(c.needle) != std::string::npos, read.error().message);
        CHECK(r.value()->read(3 * MiB, buf));  // other blocks still read
        auto report = check(bad);
        REQUIRE(report);
        CHECK(report.value().corruptions >= 1);
        CHECK_FALSE(report.value().clean);
    }
    {
        // Unallocated states read as zeros.
        Img img(path);
        img.bat(0, 2);  // ZERO
        img.bat(2, 3);  // UNMAPPED
        img.save(bad);
        auto r = open(bad);
        REQUIRE(r);
        CHECK(read_all(*r.value()) == std::vector<std::byte>(4 * MiB));
        auto map = r.value()->block_status(0, 4 * MiB).value();
        CHECK(map.at(0).kind == ExtentKind::zero);
    }
    {
        Img img(path);
        img.put64(items_at + 8, 1ull << 45);  // 32 TiB of 1 MiB blocks: a BAT far larger than its region
        img.save(bad);
        check_error(open(bad), Errc::corrupt_image, "too small");
    }
}

// ---- log ------------------------------------------------------------------------------------

TEST_CASE("log: the active sequence is replayed in memory, the file is not touched") {
    const auto disk = make_disk(3 * MiB, {{0, MiB}, {MiB, MiB}}, 8);
    const auto path = make_vhdx("log-src.vhdx", disk);
    const auto dirty = work("log-dirty.vhdx");
    const Guid guid = Guid::random();
    Img img(path);
    const std::uint64_t size = img.b.size();
    set_log_guid(img, guid);
    const auto sector = pattern(4096, 40);
    // Seq 7 (tail 0): a sector of block 0 and 8 KiB of zeros in block 1; seq 8 continues it.
    // Seq 3 elsewhere is an older valid sequence that must lose.
    auto e7 = log_entry(7, 0, guid, {{false, data_at + 8192, sector}, {true, data_at + MiB + 4096, {}, 8192}}, size, size);
    auto e8 = log_entry(8, 0, guid, {{false, data_at + 16384, sector}}, size, size);
    auto e3 = log_entry(3, 512 * KiB, guid, {{true, data_at, {}, MiB}}, size, size);
    img.put(MiB, e7);
    img.put(MiB + e7.size(), e8);
    img.put(MiB + 512 * KiB, e3);
    img.save(dirty);
    const auto before = read_file(dirty);

    auto expected = disk;
    std::memcpy(expected.data() + 8192, sector.data(), 4096);
    std::memset(expected.data() + MiB + 4096, 0, 8192);
    std::memcpy(expected.data() + 16384, sector.data(), 4096);
    auto r = open(dirty);
    REQUIRE(r);
    CHECK(read_all(*r.value()) == expected);
    const auto info = r.value()->info();
    CHECK(info.dirty);
    CHECK(info.format_specific["log-state"] == "log replayed in memory: 2 entries");
    CHECK(read_file(dirty) == before);
    auto report = check(dirty);
    REQUIRE(report);
    CHECK(report.value().clean);
    CHECK(report.value().messages.at(0).find("2 log entries") != std::string::npos);

    SUBCASE("an entry with a bad checksum is not part of the log") {
        Img b(dirty);
        b.b[MiB + e7.size() + 200] ^= std::byte{1};  // breaks seq 8: seq 7 alone is the active sequence
        b.save(work("log-b.vhdx"));
        auto expected7 = disk;
        std::memcpy(expected7.data() + 8192, sector.data(), 4096);
        std::memset(expected7.data() + MiB + 4096, 0, 8192);
        auto r2 = open(work("log-b.vhdx"));
        REQUIRE(r2);
        CHECK(read_all(*r2.value()) == expected7);
        CHECK(r2.value()->info().format_specific["log-entries-replayed"] == 1);
    }
    SUBCASE("a head whose tail is not a valid entry is ignored") {
        Img b(dirty);
        b.b[MiB + 100] ^= std::byte{1};  // seq 7 broken: seq 8's tail (0) no longer leads to it; seq 3 wins
        b.save(work("log-b.vhdx"));
        auto expected3 = disk;
        std::memset(expected3.data(), 0, MiB);
        auto r2 = open(work("log-b.vhdx"));
        REQUIRE(r2);
        CHECK(read_all(*r2.value()) == expected3);
    }
    SUBCASE("a log GUID with no entries carrying it replays nothing") {
        Img b(dirty);
        set_log_guid(b, Guid::random());
        b.save(work("log-b.vhdx"));
        auto r2 = open(work("log-b.vhdx"));
        REQUIRE(r2);
        CHECK(read_all(*r2.value()) == disk);
        CHECK_FALSE(r2.value()->info().dirty);
    }
    SUBCASE("replayed writes into the headers are corrupt") {
        Img b(path);
        set_log_guid(b, guid);
        b.put(MiB, log_entry(1, 0, guid, {{false, header1_offset, sector}}, size, size));
        b.save(work("log-b.vhdx"));
        check_error(open(work("log-b.vhdx")), Errc::corrupt_image, "into the file identifier or headers");
    }
    SUBCASE("replayed writes into the log itself are corrupt") {
        Img b(path);
        set_log_guid(b, guid);
        b.put(MiB, log_entry(1, 0, guid, {{true, MiB + 64 * KiB, {}, 4096}}, size, size));
        b.save(work("log-b.vhdx"));
        check_error(open(work("log-b.vhdx")), Errc::corrupt_image, "into the log itself");
    }
    SUBCASE("a log that says the file was longer is a truncated file") {
        Img b(path);
        set_log_guid(b, guid);
        b.put(MiB, log_entry(1, 0, guid, {{false, data_at, sector}}, size + MiB, size + MiB));
        b.save(work("log-b.vhdx"));
        check_error(open(work("log-b.vhdx")), Errc::corrupt_image, "truncated");
    }
    SUBCASE("writes past the file's last offset are corrupt") {
        Img b(path);
        set_log_guid(b, guid);
        b.put(MiB, log_entry(1, 0, guid, {{true, size, {}, 4096}}, size, size));
        b.save(work("log-b.vhdx"));
        check_error(open(work("log-b.vhdx")), Errc::corrupt_image, "beyond the file's last offset");
    }
    SUBCASE("the log may extend the file; the extension reads as zeros") {
        Img b(path);
        set_log_guid(b, guid);
        // Block 2 moves to a new block past the end of the file, which the log extends.
        std::vector<std::byte> bat_sector(b.b.begin() + bat_at, b.b.begin() + bat_at + 4096);
        store_le<std::uint64_t>(bat_sector.data() + 16, size | 6);
        b.put(MiB, log_entry(1, 0, guid, {{false, bat_at, bat_sector}, {false, size + 4096, sector}}, size, size + MiB));
        b.save(work("log-b.vhdx"));
        auto r2 = open(work("log-b.vhdx"));
        REQUIRE(r2);
        auto all = read_all(*r2.value());
        std::vector<std::byte> want(3 * MiB);
        std::memcpy(want.data(), disk.data(), 2 * MiB);
        std::memcpy(want.data() + 2 * MiB + 4096, sector.data(), 4096);
        CHECK(all == want);
    }
    SUBCASE("entries with lengths past the log or broken descriptors are skipped") {
        Img b(path);
        set_log_guid(b, guid);
        auto e = log_entry(1, 0, guid, {{false, data_at, sector}}, size, size);
        store_le<std::uint32_t>(e.data() + 8, 2 * MiB);  // longer than the log
        store_le<std::uint32_t>(e.data() + 4, crc32c_with_zeroed_field(e, 4));
        b.put(MiB, e);
        auto f = log_entry(2, 64 * KiB, guid, {{false, data_at, sector}}, size, size);
        std::memcpy(f.data() + 64, "dasc", 4);  // unknown descriptor type
        store_le<std::uint32_t>(f.data() + 4, crc32c_with_zeroed_field(f, 4));
        b.put(MiB + 64 * KiB, f);
        auto g = log_entry(3, 128 * KiB, guid, {{false, data_at, sector}}, size, size);
        store_le<std::uint32_t>(g.data() + 24, 100000);  // more descriptors than the entry holds
        store_le<std::uint32_t>(g.data() + 4, crc32c_with_zeroed_field(g, 4));
        b.put(MiB + 128 * KiB, g);
        b.save(work("log-b.vhdx"));
        auto r2 = open(work("log-b.vhdx"));
        REQUIRE(r2);
        CHECK(read_all(*r2.value()) == disk);
    }
}

// ---- differencing ---------------------------------------------------------------------------

TEST_CASE("differencing: sector bitmaps, parent linkage and where parents may live") {
    const auto parent_disk = make_disk(3 * MiB, {{0, 3 * MiB}}, 9);
    const auto parent = make_vhdx("parent.vhdx", parent_disk);
    const auto child_disk = make_disk(3 * MiB, {{0, MiB}, {MiB, MiB}}, 20);
    const auto child_src = make_vhdx("child-src.vhdx", child_disk);
    const std::string linkage = "{" + data_write_guid(parent) + "}";
    const auto child = work("child.vhdx");
    auto build = [&](const std::vector<std::pair<std::string, std::string>> &kv) {
        Img img(child_src);
        make_differencing(img, parent_locator_item(kv));
        // Block 0 fully present, block 1 partially (sectors 0..9 and 100..2047), block 2 from the parent.
        const std::uint64_t bitmap = append_bitmap_block(img, 4096);
        for (int i = 0; i < 256; ++i) img.b[bitmap + static_cast<std::size_t>(i)] = std::byte{0xFF};
        img.bat(1, img.u64(bat_at + 8) | 7);
        for (std::uint64_t s = 0; s < 2048; ++s)
            if (s < 10 || s >= 100) img.b[bitmap + 256 + s / 8] |= std::byte(1u << (s % 8));
        return img;
    };
    auto expected = parent_disk;
    std::memcpy(expected.data(), child_disk.data(), MiB);
    std::memcpy(expected.data() + MiB, child_disk.data() + MiB, 10 * 512);
    std::memcpy(expected.data() + MiB + 100 * 512, child_disk.data() + MiB + 100 * 512, MiB - 100 * 512);

    SUBCASE("a valid chain") {
        build({{"parent_linkage", linkage}, {"relative_path", ".\\vhdx-parent.vhdx"}}).save(child);
        auto r = open(child);
        REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
        CHECK(read_all(*r.value()) == expected);
        CHECK(r.value()->chain_info().size() == 2);
        CHECK(r.value()->info().backing_filename == ".\\vhdx-parent.vhdx");
        auto map = r.value()->block_status(0, 3 * MiB).value();
        REQUIRE(map.size() == 4);  // child (blocks 0 and 1 are neighbours in the file), parent, child, parent
        CHECK(map.at(0).depth == 0);
        CHECK(map.at(1).depth == 1);
        CHECK(map.at(1).offset == MiB + 10 * 512);
        CHECK(map.at(2).offset == MiB + 100 * 512);
        CHECK(map.at(3).depth == 1);
        auto report = check(child);
        REQUIRE(report);
        CHECK(report.value().clean);
        OpenOptions alone;
        alone.open_backing = false;
        auto only = open_image(child, alone);
        REQUIRE(only);
        auto all = read_all(*only.value());
        CHECK(std::all_of(all.begin() + 2 * MiB, all.end(), [](std::byte b) { return b == std::byte{0}; }));
    }
    SUBCASE("GUIDs in the locator may be upper case; the second linkage counts too") {
        std::string upper = linkage;
        for (auto &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        build({{"parent_linkage", "{00000000-0000-4000-8000-000000000000}"}, {"parent_linkage2", upper},
               {"relative_path", "vhdx-parent.vhdx"}})
            .save(child);
        auto r = open(child);
        REQUIRE(r);
        CHECK(read_all(*r.value()) == expected);
    }
    SUBCASE("a parent whose DataWriteGuid changed is refused, naming both") {
        build({{"parent_linkage", "{01234567-89ab-4def-8123-456789abcdef}"}, {"relative_path", "vhdx-parent.vhdx"}}).save(child);
        auto r = open(child);
        check_error(r, Errc::corrupt_image, "01234567-89ab-4def-8123-456789abcdef");
        CHECK(r.error().message.find(data_write_guid(parent)) != std::string::npos);
    }
    SUBCASE("absolute and climbing parent paths are refused unless allowed") {
        build({{"parent_linkage", linkage}, {"relative_path", parent}}).save(child);
        check_error(open(child), Errc::permission_denied, "absolute path");
        auto allowed = open(child, true);
        REQUIRE(allowed);
        CHECK(read_all(*allowed.value()) == expected);
        build({{"parent_linkage", linkage}, {"relative_path", "..\\vhdx-parent.vhdx"}}).save(child);
        check_error(open(child), Errc::permission_denied, "..");
    }
    SUBCASE("a parent that is the child itself is a loop") {
        build({{"parent_linkage", linkage}, {"relative_path", "vhdx-child.vhdx"}}).save(child);
        check_error(open(child), Errc::corrupt_image, "loops");
    }
    SUBCASE("two children naming each other are a loop too") {
        // Both copies keep the source's DataWriteGuid, so each links correctly to the other.
        const std::string linkage_b = "{" + data_write_guid(child_src) + "}";
        build({{"parent_linkage", linkage_b}, {"relative_path", "vhdx-child2.vhdx"}}).save(child);
        build({{"parent_linkage", linkage_b}, {"relative_path", "vhdx-child.vhdx"}}).save(work("child2.vhdx"));
        check_error(open(child), Errc::corrupt_image, "loops");
    }
    SUBCASE("a locator with only Windows paths cannot be followed") {
        build({{"parent_linkage", linkage}, {"absolute_win32_path", "C:\\vms\\parent.vhdx"}}).save(child);
        check_error(open(child), Errc::unsupported, "C:\\vms\\parent.vhdx");
        OpenOptions alone;
        alone.open_backing = false;
        CHECK(open_image(child, alone));
    }
    SUBCASE("broken locators") {
        auto item = parent_locator_item({{"parent_linkage", linkage}, {"relative_path", "vhdx-parent.vhdx"}});
        auto with = [&](std::vector<std::byte> it) {
            Img img(child_src);
            make_differencing(img, it);
            img.save(child);
            return open(child);
        };
        auto past = item;
        store_le<std::uint32_t>(past.data() + 20 + 12 + 4, 60000);  // value beyond the item
        check_error(with(past), Errc::corrupt_image, "beyond the item");
        auto odd = item;
        store_le<std::uint16_t>(odd.data() + 20 + 10, 0);  // empty value
        check_error(with(odd), Errc::corrupt_image, "empty value");
        auto many = item;
        store_le<std::uint16_t>(many.data() + 18, 5000);
        check_error(with(many), Errc::corrupt_image, "5000 entries");
        auto nul = item;
        nul[nul.size() - 2] = std::byte{0};  // a NUL inside the last value
        nul[nul.size() - 1] = std::byte{0};
        check_error(with(nul), Errc::corrupt_image, "not valid UTF-16");
        check_error(with(parent_locator_item({{"parent_linkage", linkage}}, Guid::random())), Errc::unsupported,
                    "parent locator type");
        check_error(with(parent_locator_item({{"relative_path", "a"}, {"relative_path", "b"}})), Errc::corrupt_image,
                    "twice");
    }
    SUBCASE("a partially present block needs its sector bitmap") {
        Img img = build({{"parent_linkage", linkage}, {"relative_path", "vhdx-parent.vhdx"}});
        img.bat(4096, 0);  // bitmap block gone
        img.save(child);
        auto r = open(child);
        REQUIRE(r);
        std::vector<std::byte> buf(512);
        auto read = r.value()->read(MiB, buf);
        REQUIRE_FALSE(read);
        CHECK(read.error().message.find("sector bitmap") != std::string::npos);
    }
}
