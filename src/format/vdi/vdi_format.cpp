#include "format/vdi/vdi_format.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vdi {
namespace {

// Field offsets of the pre-header and the version 1.1 header.
namespace off {
constexpr std::size_t text = 0x00, signature = 0x40, version = 0x44, header_size = 0x48, image_type = 0x4c,
                      image_flags = 0x50, description = 0x54, offset_bmap = 0x154, offset_data = 0x158,
                      cylinders = 0x15c, heads = 0x160, sectors = 0x164, sector_size = 0x168, disk_size = 0x170,
                      block_size = 0x178, block_extra = 0x17c, blocks_in_image = 0x180, blocks_allocated = 0x184,
                      uuid_image = 0x188, uuid_last_snap = 0x198, uuid_link = 0x1a8, uuid_parent = 0x1b8;
}

Uuid load_uuid(const std::byte *p) noexcept {
    Uuid u;
    std::memcpy(u.data(), p, u.size());
    return u;
}

}  // namespace

Header parse_header(std::span<const std::byte, header_area> b) noexcept {
    const std::byte *p = b.data();
    Header h;
    std::memcpy(h.text.data(), p + off::text, h.text.size());
    h.signature = le32(p, off::signature);
    h.version = le32(p, off::version);
    h.header_size = le32(p, off::header_size);
    h.image_type = le32(p, off::image_type);
    h.image_flags = le32(p, off::image_flags);
    std::memcpy(h.description.data(), p + off::description, h.description.size());
    h.offset_bmap = le32(p, off::offset_bmap);
    h.offset_data = le32(p, off::offset_data);
    h.cylinders = le32(p, off::cylinders);
    h.heads = le32(p, off::heads);
    h.sectors = le32(p, off::sectors);
    h.sector_size = le32(p, off::sector_size);
    h.disk_size = le64(p, off::disk_size);
    h.block_size = le32(p, off::block_size);
    h.block_extra = le32(p, off::block_extra);
    h.blocks_in_image = le32(p, off::blocks_in_image);
    h.blocks_allocated = le32(p, off::blocks_allocated);
    h.uuid_image = load_uuid(p + off::uuid_image);
    h.uuid_last_snap = load_uuid(p + off::uuid_last_snap);
    h.uuid_link = load_uuid(p + off::uuid_link);
    h.uuid_parent = load_uuid(p + off::uuid_parent);
    return h;
}

void serialize_header(const Header &h, std::span<std::byte, header_area> out) noexcept {
    std::byte *p = out.data();
    std::memset(p, 0, header_area);
    std::memcpy(p + off::text, h.text.data(), h.text.size());
    store_le<std::uint32_t>(p + off::signature, h.signature);
    store_le<std::uint32_t>(p + off::version, h.version);
    store_le<std::uint32_t>(p + off::header_size, h.header_size);
    store_le<std::uint32_t>(p + off::image_type, h.image_type);
    store_le<std::uint32_t>(p + off::image_flags, h.image_flags);
    std::memcpy(p + off::description, h.description.data(), h.description.size());
    store_le<std::uint32_t>(p + off::offset_bmap, h.offset_bmap);
    store_le<std::uint32_t>(p + off::offset_data, h.offset_data);
    store_le<std::uint32_t>(p + off::cylinders, h.cylinders);
    store_le<std::uint32_t>(p + off::heads, h.heads);
    store_le<std::uint32_t>(p + off::sectors, h.sectors);
    store_le<std::uint32_t>(p + off::sector_size, h.sector_size);
    store_le<std::uint64_t>(p + off::disk_size, h.disk_size);
    store_le<std::uint32_t>(p + off::block_size, h.block_size);
    store_le<std::uint32_t>(p + off::block_extra, h.block_extra);
    store_le<std::uint32_t>(p + off::blocks_in_image, h.blocks_in_image);
    store_le<std::uint32_t>(p + off::blocks_allocated, h.blocks_allocated);
    std::memcpy(p + off::uuid_image, h.uuid_image.data(), 16);
    std::memcpy(p + off::uuid_last_snap, h.uuid_last_snap.data(), 16);
    std::memcpy(p + off::uuid_link, h.uuid_link.data(), 16);
    std::memcpy(p + off::uuid_parent, h.uuid_parent.data(), 16);
}

std::string uuid_string(const Uuid &u) {
    // time_low, time_mid and time_hi_and_version are little-endian; the rest is in byte order.
    return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                       u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                       u[15]);
}

bool uuid_is_null(const Uuid &u) noexcept {
    return std::all_of(u.begin(), u.end(), [](std::uint8_t b) { return b == 0; });
}

std::string field_text(std::span<const char> field) {
    std::string s(field.data(), strnlen(field.data(), field.size()));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

std::string_view image_type_name(std::uint32_t type) noexcept {
    switch (type) {
    case static_cast<std::uint32_t>(ImageType::dynamic): return "dynamic";
    case static_cast<std::uint32_t>(ImageType::fixed): return "static";
    case static_cast<std::uint32_t>(ImageType::undo): return "undo";
    case static_cast<std::uint32_t>(ImageType::diff): return "differencing";
    }
    return "unknown";
}

}  // namespace hypersdk::format::vdi
