// VHD (Virtual PC / Hyper-V "vpc") on-disk structures: the 512-byte footer, the 1024-byte dynamic
// disk header, CHS geometry, and the rule qemu-img 7.2 uses to size a VHD. All fields big-endian.
#pragma once

#include <hypersdk/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::format::vhd {

inline constexpr std::size_t sector_size = 512;
inline constexpr std::size_t footer_size = 512;
inline constexpr std::size_t dynamic_header_size = 1024;
inline constexpr std::uint32_t bat_unallocated = 0xFFFFFFFF;
inline constexpr std::uint64_t no_data_offset = 0xFFFFFFFFFFFFFFFF;
inline constexpr std::uint32_t format_version = 0x00010000;  // footer and dynamic header: 1.0
inline constexpr std::uint32_t features_reserved = 0x00000002;  // "must always be set"

// qemu refuses anything larger (VHD_MAX_SECTORS, 2040 GiB); so does every Microsoft tool.
inline constexpr std::uint64_t max_sectors = 0xff000000;
// 65535 cylinders x 16 heads x 255 sectors: the largest geometry the footer can hold.
inline constexpr std::uint64_t max_geometry_sectors = 65535ULL * 16 * 255;
// VHD timestamps count seconds from 2000-01-01 00:00:00 UTC.
inline constexpr std::int64_t timestamp_epoch = 946684800;

enum class DiskType : std::uint32_t { fixed = 2, dynamic = 3, differencing = 4 };

using Uuid = std::array<std::uint8_t, 16>;  // stored and shown in byte order (as vhdiinfo does)
using FourCC = std::array<char, 4>;

inline bool fourcc_is(const FourCC &c, const char (&literal)[5]) noexcept {
    return c[0] == literal[0] && c[1] == literal[1] && c[2] == literal[2] && c[3] == literal[3];
}

struct Geometry {
    std::uint16_t cylinders = 0;
    std::uint8_t heads = 0;
    std::uint8_t sectors_per_track = 0;
    [[nodiscard]] std::uint64_t total_sectors() const noexcept {
        return std::uint64_t{cylinders} * heads * sectors_per_track;
    }
};

struct Footer {
    std::uint32_t features = features_reserved;
    std::uint32_t version = format_version;
    std::uint64_t data_offset = no_data_offset;
    std::uint32_t timestamp = 0;
    FourCC creator_app{};
    std::uint32_t creator_version = 0;
    FourCC creator_os{};
    std::uint64_t original_size = 0;
    std::uint64_t current_size = 0;
    Geometry geometry;
    std::uint32_t disk_type = 0;
    std::uint32_t checksum = 0;  // as stored
    Uuid unique_id{};
    std::uint8_t saved_state = 0;
};

struct ParentLocator {
    FourCC platform{};
    std::uint32_t data_space = 0;   // sectors (some writers store bytes); not needed to read
    std::uint32_t data_length = 0;  // bytes
    std::uint64_t data_offset = 0;  // absolute file offset
    [[nodiscard]] bool empty() const noexcept { return platform == FourCC{}; }
};

struct DynamicHeader {
    std::uint64_t data_offset = no_data_offset;
    std::uint64_t table_offset = 0;
    std::uint32_t version = format_version;
    std::uint32_t max_table_entries = 0;
    std::uint32_t block_size = 0;
    std::uint32_t checksum = 0;  // as stored
    Uuid parent_id{};
    std::uint32_t parent_timestamp = 0;
    std::array<std::byte, 512> parent_name{};  // UTF-16BE, NUL padded
    std::array<ParentLocator, 8> locators{};
};

// One's complement of the byte sum, with the 4 checksum bytes at `checksum_at` counted as zero.
std::uint32_t checksum(std::span<const std::byte> bytes, std::size_t checksum_at) noexcept;

// Parsing never fails on content: callers decide what a bad cookie or checksum means.
bool has_footer_cookie(std::span<const std::byte> bytes) noexcept;
Footer parse_footer(std::span<const std::byte, footer_size> bytes) noexcept;
bool footer_checksum_ok(std::span<const std::byte, footer_size> bytes) noexcept;
void serialize_footer(const Footer &footer, std::span<std::byte, footer_size> out) noexcept;  // computes the checksum

bool has_dynamic_header_cookie(std::span<const std::byte> bytes) noexcept;
DynamicHeader parse_dynamic_header(std::span<const std::byte, dynamic_header_size> bytes) noexcept;
bool dynamic_header_checksum_ok(std::span<const std::byte, dynamic_header_size> bytes) noexcept;
void serialize_dynamic_header(const DynamicHeader &header, std::span<std::byte, dynamic_header_size> out) noexcept;

// The VHD specification's CHS algorithm (appendix "CHS calculation"); sizes beyond the largest
// geometry are clamped to it.
Geometry geometry_for_sectors(std::uint64_t total_sectors) noexcept;

// qemu-img 7.2's choice: the footer's current_size when the creator is known to use it ('win ',
// 'qem2', 'd2v ', 'CTXS', 'tap\0') or the geometry is the maximum one; otherwise cylinders x
// heads x sectors. Everything else (Virtual PC 'vpc ', old qemu 'qemu', unknown) gets CHS.
bool sized_by_current_size(const Footer &footer) noexcept;
// Virtual size in bytes by that rule (current_size is truncated to whole sectors, as qemu does).
std::uint64_t virtual_size_of(const Footer &footer) noexcept;

std::string uuid_string(const Uuid &id);
bool uuid_is_null(const Uuid &id) noexcept;
// A four-character code for humans: printable characters kept, others as \xNN.
std::string fourcc_string(const FourCC &code);
std::string_view disk_type_name(std::uint32_t type) noexcept;

}  // namespace hypersdk::format::vhd
