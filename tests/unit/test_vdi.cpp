// VDI driver: hostile and broken images built in code must fail with clear errors; the block map
// kinds (allocated, unallocated, discarded) read right; check() applies qemu-img's rules.
#include "format/layer.hpp"
#include "format/vdi/vdi_format.hpp"

#include "core/endian.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;
namespace vdi = hypersdk::format::vdi;

namespace {

constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::uint32_t U = vdi::block_unallocated;
constexpr std::uint32_t D = vdi::block_discarded;

struct Spec {
    std::uint64_t disk_size = 4 * MiB;
    std::vector<std::uint32_t> map = {1, U, 0, D};  // disk block -> data block
    std::uint32_t data_blocks = 2;                  // blocks stored in the file (data block k = 0x30 + k)
};

// Header at 0, block map at 512, data right after the map (sector-aligned), like qemu-img.
std::vector<std::byte> build(const Spec &s) {
    vdi::Header h;
    std::memcpy(h.text.data(), vdi::oracle_text.data(), vdi::oracle_text.size());
    h.disk_size = s.disk_size;
    h.blocks_in_image = static_cast<std::uint32_t>(s.map.size());
    h.blocks_allocated = s.data_blocks;
    h.offset_bmap = 512;
    h.offset_data = static_cast<std::uint32_t>(512 + (s.map.size() * 4 + 511) / 512 * 512);
    std::vector<std::byte> b(h.offset_data + std::uint64_t{s.data_blocks} * h.block_size);
    vdi::serialize_header(h, std::span<std::byte, vdi::header_area>(b.data(), vdi::header_area));
    for (std::size_t i = 0; i < s.map.size(); ++i) store_le<std::uint32_t>(b.data() + 512 + 4 * i, s.map[i]);
    for (std::uint32_t k = 0; k < s.data_blocks; ++k)
        std::memset(b.data() + h.offset_data + std::uint64_t{k} * h.block_size, 0x30 + static_cast<int>(k), h.block_size);
    return b;
}

template <class F>
std::vector<std::byte> edited(std::vector<std::byte> b, F edit) {
    std::span<std::byte, vdi::header_area> raw(b.data(), vdi::header_area);
    auto h = vdi::parse_header(raw);
    edit(h);
    vdi::serialize_header(h, raw);
    return b;
}

Result<std::unique_ptr<format::Layer>> open_vdi(const std::string &name, const std::vector<std::byte> &bytes) {
    return format::open_layer(write_file(name, bytes), "vdi", OpenOptions{});
}

void require_error(const Result<std::unique_ptr<format::Layer>> &r, Errc code, const std::string &text) {
    REQUIRE_FALSE(r);
    CHECK(r.error().code == code);
    INFO(r.error().message);
    CHECK(r.error().message.find(text) != std::string::npos);
}

}  // namespace

TEST_CASE("VDI: map entries give data, holes and zeros") {
    auto layer = open_vdi("good.vdi", build({}));
    REQUIRE(layer);
    auto &l = *layer.value();
    CHECK(l.virtual_size() == 4 * MiB);
    std::vector<Extent> runs;
    REQUIRE(l.layer_status(0, 4 * MiB, runs));
    REQUIRE(runs.size() == 4);
    CHECK(runs[0].kind == ExtentKind::data);
    CHECK(runs[0].host_offset == 1024 + MiB);
    CHECK(runs[1].kind == ExtentKind::hole);
    CHECK(runs[2].kind == ExtentKind::data);
    CHECK(runs[2].host_offset == 1024);
    CHECK(runs[3].kind == ExtentKind::zero);
    std::vector<std::byte> data(4 * MiB);
    REQUIRE(l.read(0, data));
    CHECK(data[0] == std::byte{0x31});
    CHECK(data[MiB] == std::byte{0});
    CHECK(data[2 * MiB + 5] == std::byte{0x30});
    CHECK(data[3 * MiB + 5] == std::byte{0});
    std::vector<std::byte> past(10);
    CHECK(l.read(4 * MiB - 5, past).error().code == Errc::invalid_argument);
    auto report = l.check();
    REQUIRE(report);
    CHECK(report.value().corruptions == 0);
    CHECK(report.value().allocated_clusters == 2);
    CHECK(report.value().total_clusters == 4);
    CHECK(l.info().format_specific["discarded-blocks"] == 1);
}

TEST_CASE("VDI: neighbouring blocks stored in order read as one run") {
    Spec s;
    s.map = {0, 1, 2};
    s.data_blocks = 3;
    s.disk_size = 3 * MiB - 512;
    auto layer = open_vdi("contig.vdi", build(s));
    REQUIRE(layer);
    std::vector<Extent> runs;
    REQUIRE(layer.value()->layer_status(0, layer.value()->virtual_size(), runs));
    CHECK(runs.size() == 1);
}

TEST_CASE("VDI header: size, signature, version, header size") {
    require_error(open_vdi("tiny.vdi", std::vector<std::byte>(200)), Errc::corrupt_image, "too small");
    require_error(open_vdi("nosig.vdi", std::vector<std::byte>(4096)), Errc::corrupt_image, "no VDI signature");
    require_error(open_vdi("v10.vdi", edited(build({}), [](vdi::Header &h) { h.version = 0x00010000; })), Errc::unsupported,
                  "version 1.0");
    require_error(open_vdi("hs.vdi", edited(build({}), [](vdi::Header &h) { h.header_size = 0x100; })), Errc::corrupt_image,
                  "header size");
    require_error(open_vdi("hs2.vdi", edited(build({}), [](vdi::Header &h) { h.header_size = 0xFFFFFFF0; })), Errc::corrupt_image,
                  "header size");
}

TEST_CASE("VDI: differencing and unknown image types are unsupported") {
    require_error(open_vdi("diff.vdi", edited(build({}), [](vdi::Header &h) { h.image_type = 4; })), Errc::unsupported,
                  "differencing VDI");
    require_error(open_vdi("undo.vdi", edited(build({}), [](vdi::Header &h) { h.image_type = 3; })), Errc::unsupported,
                  "differencing VDI");
    require_error(open_vdi("link.vdi", edited(build({}), [](vdi::Header &h) { h.uuid_link[3] = 1; })), Errc::unsupported,
                  "differencing VDI");
    require_error(open_vdi("type9.vdi", edited(build({}), [](vdi::Header &h) { h.image_type = 9; })), Errc::unsupported,
                  "image type 9");
}

TEST_CASE("VDI block size zero, absurd, not a power of two, and extra data per block") {
    for (std::uint32_t bs : {0U, 1000U, 3U << 20, 1U << 31, 256U})
        require_error(open_vdi("bs.vdi", edited(build({}), [&](vdi::Header &h) { h.block_size = bs; })), Errc::corrupt_image,
                      "block size");
    require_error(open_vdi("extra.vdi", edited(build({}), [](vdi::Header &h) { h.block_extra = 512; })), Errc::unsupported,
                  "extra data");
    require_error(open_vdi("sector.vdi", edited(build({}), [](vdi::Header &h) { h.sector_size = 4096; })), Errc::unsupported,
                  "sector size");
}

TEST_CASE("VDI: disk size beyond its blocks, huge or truncated block maps, overlapping areas") {
    require_error(open_vdi("dsize.vdi", edited(build({}), [](vdi::Header &h) { h.disk_size = 4 * MiB + 512; })),
                  Errc::corrupt_image, "exceeds");
    require_error(open_vdi("hugemap.vdi", edited(build({}), [](vdi::Header &h) {
                      h.blocks_in_image = 0xFFFFFFFF;
                  })),
                  Errc::corrupt_image, "larger than 256 MiB");
    require_error(open_vdi("longmap.vdi", edited(build({}), [](vdi::Header &h) { h.blocks_in_image = 4 << 20; })),
                  Errc::corrupt_image, "block map (4194304 entries at offset 0x200) extends beyond the end of the file");
    require_error(open_vdi("mapeof.vdi", edited(build({}), [](vdi::Header &h) { h.offset_bmap = 0x7FFFFE00; })),
                  Errc::corrupt_image, "extends beyond the end of the file");
    require_error(open_vdi("overlap.vdi", edited(build({}), [](vdi::Header &h) { h.offset_data = 512; })), Errc::corrupt_image,
                  "overlaps the block map");
    require_error(open_vdi("unaligned.vdi", edited(build({}), [](vdi::Header &h) { h.offset_data = 1025; })), Errc::unsupported,
                  "not sector-aligned");
}

TEST_CASE("VDI: map entries beyond the data in the file are refused") {
    Spec s;
    s.map = {0, 5, U, U};
    require_error(open_vdi("past.vdi", build(s)), Errc::corrupt_image, "entry 1 points to data block 5");
    s.map = {0, 0xFFFFFFF0, U, U};
    require_error(open_vdi("farpast.vdi", build(s)), Errc::corrupt_image, "entry 1");
}

TEST_CASE("VDI: an odd disk size is rounded up to whole sectors, as qemu does") {
    auto layer = open_vdi("odd.vdi", edited(build({}), [](vdi::Header &h) { h.disk_size = 4 * MiB - 700; }));
    REQUIRE(layer);
    CHECK(layer.value()->virtual_size() == 4 * MiB - 512);
}

TEST_CASE("VDI check(): shared blocks, out-of-range entries, allocated count") {
    Spec s;
    s.map = {0, 1, 1, U};  // data block 1 used twice
    auto layer = open_vdi("shared.vdi", build(s));
    REQUIRE(layer);
    auto r = layer.value()->check();
    REQUIRE(r);
    CHECK(r.value().corruptions == 2);  // shared, and 3 used where the header says 2
    CHECK(r.value().messages.at(0).find("used by block map entries 1 and 2") != std::string::npos);

    s.map = {0, 1, U, U};
    auto b = build(s);
    b.resize(b.size() + 8 * MiB);  // room for data block 9 in the file
    store_le<std::uint32_t>(b.data() + 512 + 8, 9);  // entry 2 -> data block 9: beyond 4 blocks in image
    layer = open_vdi("range.vdi", b);
    REQUIRE(layer);
    r = layer.value()->check();
    REQUIRE(r);
    CHECK(r.value().corruptions == 1);
    CHECK(r.value().messages.at(0).find("beyond the 4 blocks") != std::string::npos);

    s.map = {0, 1, 3, U};  // block 3 exists in the file but lies past the 2 allocated
    s.data_blocks = 4;
    b = edited(build(s), [](vdi::Header &h) { h.blocks_allocated = 3; });
    layer = open_vdi("beyondalloc.vdi", b);
    REQUIRE(layer);
    r = layer.value()->check();
    REQUIRE(r);
    CHECK(r.value().corruptions == 1);
    CHECK(r.value().messages.at(0).find("past the 3 allocated blocks") != std::string::npos);
}

TEST_CASE("VDI uuids are shown in VirtualBox's order") {
    vdi::Uuid u{};
    for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<std::uint8_t>(i);
    CHECK(vdi::uuid_string(u) == "03020100-0504-0706-0809-0a0b0c0d0e0f");
}
