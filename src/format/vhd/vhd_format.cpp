#include "format/vhd/vhd_format.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vhd {
namespace {

// Footer field offsets (VHD specification, "Hard Disk Footer Format").
namespace ft {
constexpr std::size_t cookie = 0, features = 8, version = 12, data_offset = 16, timestamp = 24, creator_app = 28,
                      creator_version = 32, creator_os = 36, original_size = 40, current_size = 48, cylinders = 56,
                      heads = 58, sectors = 59, disk_type = 60, checksum = 64, unique_id = 68, saved_state = 84;
}
// Dynamic disk header field offsets ("Dynamic Disk Header Format").
namespace dh {
constexpr std::size_t cookie = 0, data_offset = 8, table_offset = 16, version = 24, max_table_entries = 28,
                      block_size = 32, checksum = 36, parent_id = 40, parent_timestamp = 56, parent_name = 64,
                      locators = 576, locator_size = 24;
}

constexpr char footer_cookie[8] = {'c', 'o', 'n', 'e', 'c', 't', 'i', 'x'};
constexpr char header_cookie[8] = {'c', 'x', 's', 'p', 'a', 'r', 's', 'e'};

FourCC load_fourcc(const std::byte *p) noexcept {
    FourCC c;
    std::memcpy(c.data(), p, 4);
    return c;
}

Uuid load_uuid(const std::byte *p) noexcept {
    Uuid u;
    std::memcpy(u.data(), p, u.size());
    return u;
}


}  // namespace

std::uint32_t checksum(std::span<const std::byte> bytes, std::size_t checksum_at) noexcept {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i >= checksum_at && i < checksum_at + 4) continue;
        sum += std::to_integer<std::uint8_t>(bytes[i]);
    }
    return ~sum;
}

bool has_footer_cookie(std::span<const std::byte> bytes) noexcept {
    return bytes.size() >= 8 && std::memcmp(bytes.data(), footer_cookie, 8) == 0;
}

Footer parse_footer(std::span<const std::byte, footer_size> b) noexcept {
    const std::byte *p = b.data();
    Footer f;
    f.features = be32(p, ft::features);
    f.version = be32(p, ft::version);
    f.data_offset = be64(p, ft::data_offset);
    f.timestamp = be32(p, ft::timestamp);
    f.creator_app = load_fourcc(p + ft::creator_app);
    f.creator_version = be32(p, ft::creator_version);
    f.creator_os = load_fourcc(p + ft::creator_os);
    f.original_size = be64(p, ft::original_size);
    f.current_size = be64(p, ft::current_size);
    f.geometry.cylinders = be16(p, ft::cylinders);
    f.geometry.heads = std::to_integer<std::uint8_t>(p[ft::heads]);
    f.geometry.sectors_per_track = std::to_integer<std::uint8_t>(p[ft::sectors]);
    f.disk_type = be32(p, ft::disk_type);
    f.checksum = be32(p, ft::checksum);
    f.unique_id = load_uuid(p + ft::unique_id);
    f.saved_state = std::to_integer<std::uint8_t>(p[ft::saved_state]);
    return f;
}

bool footer_checksum_ok(std::span<const std::byte, footer_size> b) noexcept {
    return checksum(b, ft::checksum) == be32(b.data(), ft::checksum);
}

void serialize_footer(const Footer &f, std::span<std::byte, footer_size> out) noexcept {
    std::byte *p = out.data();
    std::memset(p, 0, footer_size);
    std::memcpy(p + ft::cookie, footer_cookie, 8);
    store_be<std::uint32_t>(p + ft::features, f.features);
    store_be<std::uint32_t>(p + ft::version, f.version);
    store_be<std::uint64_t>(p + ft::data_offset, f.data_offset);
    store_be<std::uint32_t>(p + ft::timestamp, f.timestamp);
    std::memcpy(p + ft::creator_app, f.creator_app.data(), 4);
    store_be<std::uint32_t>(p + ft::creator_version, f.creator_version);
    std::memcpy(p + ft::creator_os, f.creator_os.data(), 4);
    store_be<std::uint64_t>(p + ft::original_size, f.original_size);
    store_be<std::uint64_t>(p + ft::current_size, f.current_size);
    store_be<std::uint16_t>(p + ft::cylinders, f.geometry.cylinders);
    p[ft::heads] = std::byte{f.geometry.heads};
    p[ft::sectors] = std::byte{f.geometry.sectors_per_track};
    store_be<std::uint32_t>(p + ft::disk_type, f.disk_type);
    std::memcpy(p + ft::unique_id, f.unique_id.data(), f.unique_id.size());
    p[ft::saved_state] = std::byte{f.saved_state};
    store_be<std::uint32_t>(p + ft::checksum, checksum(out, ft::checksum));
}

bool has_dynamic_header_cookie(std::span<const std::byte> bytes) noexcept {
    return bytes.size() >= 8 && std::memcmp(bytes.data(), header_cookie, 8) == 0;
}

DynamicHeader parse_dynamic_header(std::span<const std::byte, dynamic_header_size> b) noexcept {
    const std::byte *p = b.data();
    DynamicHeader h;
    h.data_offset = be64(p, dh::data_offset);
    h.table_offset = be64(p, dh::table_offset);
    h.version = be32(p, dh::version);
    h.max_table_entries = be32(p, dh::max_table_entries);
    h.block_size = be32(p, dh::block_size);
    h.checksum = be32(p, dh::checksum);
    h.parent_id = load_uuid(p + dh::parent_id);
    h.parent_timestamp = be32(p, dh::parent_timestamp);
    std::memcpy(h.parent_name.data(), p + dh::parent_name, h.parent_name.size());
    for (std::size_t i = 0; i < h.locators.size(); ++i) {
        const std::byte *e = p + dh::locators + i * dh::locator_size;
        auto &l = h.locators[i];
        l.platform = load_fourcc(e);
        l.data_space = be32(e, 4);
        l.data_length = be32(e, 8);
        l.data_offset = be64(e, 16);
    }
    return h;
}

bool dynamic_header_checksum_ok(std::span<const std::byte, dynamic_header_size> b) noexcept {
    return checksum(b, dh::checksum) == be32(b.data(), dh::checksum);
}

void serialize_dynamic_header(const DynamicHeader &h, std::span<std::byte, dynamic_header_size> out) noexcept {
    std::byte *p = out.data();
    std::memset(p, 0, dynamic_header_size);
    std::memcpy(p + dh::cookie, header_cookie, 8);
    store_be<std::uint64_t>(p + dh::data_offset, h.data_offset);
    store_be<std::uint64_t>(p + dh::table_offset, h.table_offset);
    store_be<std::uint32_t>(p + dh::version, h.version);
    store_be<std::uint32_t>(p + dh::max_table_entries, h.max_table_entries);
    store_be<std::uint32_t>(p + dh::block_size, h.block_size);
    std::memcpy(p + dh::parent_id, h.parent_id.data(), h.parent_id.size());
    store_be<std::uint32_t>(p + dh::parent_timestamp, h.parent_timestamp);
    std::memcpy(p + dh::parent_name, h.parent_name.data(), h.parent_name.size());
    for (std::size_t i = 0; i < h.locators.size(); ++i) {
        std::byte *e = p + dh::locators + i * dh::locator_size;
        const auto &l = h.locators[i];
        std::memcpy(e, l.platform.data(), 4);
        store_be<std::uint32_t>(e + 4, l.data_space);
        store_be<std::uint32_t>(e + 8, l.data_length);
        store_be<std::uint64_t>(e + 16, l.data_offset);
    }
    store_be<std::uint32_t>(p + dh::checksum, checksum(out, dh::checksum));
}

Geometry geometry_for_sectors(std::uint64_t total_sectors) noexcept {
    std::uint64_t sectors = std::min(total_sectors, max_geometry_sectors);
    std::uint64_t spt, heads, cth;  // sectors per track, heads, cylinders x heads
    if (sectors >= 65535ULL * 16 * 63) {
        spt = 255;
        heads = 16;
        cth = sectors / spt;
    } else {
        spt = 17;
        cth = sectors / spt;
        heads = (cth + 1023) / 1024;
        if (heads < 4) heads = 4;
        if (cth >= heads * 1024 || heads > 16) {
            spt = 31;
            heads = 16;
            cth = sectors / spt;
        }
        if (cth >= heads * 1024) {
            spt = 63;
            heads = 16;
            cth = sectors / spt;
        }
    }
    Geometry g;
    g.cylinders = static_cast<std::uint16_t>(cth / heads);
    g.heads = static_cast<std::uint8_t>(heads);
    g.sectors_per_track = static_cast<std::uint8_t>(spt);
    return g;
}

bool sized_by_current_size(const Footer &f) noexcept {
    const FourCC &a = f.creator_app;
    const bool trusts_current_size = fourcc_is(a, "win ") || fourcc_is(a, "qem2") || fourcc_is(a, "d2v ") ||
                                     fourcc_is(a, "CTXS") || std::memcmp(a.data(), "tap\0", 4) == 0;
    return trusts_current_size || f.geometry.total_sectors() == max_geometry_sectors;
}

std::uint64_t virtual_size_of(const Footer &f) noexcept {
    if (sized_by_current_size(f)) return f.current_size / sector_size * sector_size;
    return f.geometry.total_sectors() * sector_size;
}

std::string uuid_string(const Uuid &u) {
    return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                       u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                       u[15]);
}

bool uuid_is_null(const Uuid &u) noexcept {
    return std::all_of(u.begin(), u.end(), [](std::uint8_t b) { return b == 0; });
}

std::string fourcc_string(const FourCC &c) {
    std::string s;
    for (char ch : c) {
        const auto u = static_cast<unsigned char>(ch);
        if (u >= 0x20 && u < 0x7f) s.push_back(ch);
        else s += fmt::format("\\x{:02x}", u);
    }
    return s;
}

std::string_view disk_type_name(std::uint32_t type) noexcept {
    switch (type) {
    case static_cast<std::uint32_t>(DiskType::fixed): return "fixed";
    case static_cast<std::uint32_t>(DiskType::dynamic): return "dynamic";
    case static_cast<std::uint32_t>(DiskType::differencing): return "differencing";
    }
    return "unknown";
}

}  // namespace hypersdk::format::vhd
