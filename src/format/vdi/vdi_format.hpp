// VDI (VirtualBox) on-disk structures: the pre-header (text, signature, version), the version 1.1
// header, and the block map. All fields little-endian.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::format::vdi {

inline constexpr std::size_t header_area = 512;           // header as stored, zero padded
inline constexpr std::size_t preheader_size = 0x48;       // text (64), signature, version
inline constexpr std::uint32_t signature = 0xbeda107f;
inline constexpr std::uint32_t version_1_1 = 0x00010001;
inline constexpr std::uint32_t header_size_v1 = 0x180;    // what qemu writes (VirtualBox's VDIHEADER1)
inline constexpr std::uint32_t sector_size = 512;
inline constexpr std::uint32_t block_unallocated = 0xFFFFFFFF;  // nothing stored: reads as zeros
inline constexpr std::uint32_t block_discarded = 0xFFFFFFFE;    // discarded: zeros
inline constexpr std::uint32_t default_block_size = 1 << 20;
inline constexpr std::string_view oracle_text = "<<< Oracle VM VirtualBox Disk Image >>>\n";

enum class ImageType : std::uint32_t { dynamic = 1, fixed = 2, undo = 3, diff = 4 };

// Stored as VirtualBox's RTUUID: the first three fields little-endian (Microsoft GUID layout).
using Uuid = std::array<std::uint8_t, 16>;

struct Header {
    std::array<char, 64> text{};
    std::uint32_t signature = vdi::signature;
    std::uint32_t version = version_1_1;
    std::uint32_t header_size = header_size_v1;
    std::uint32_t image_type = static_cast<std::uint32_t>(ImageType::dynamic);
    std::uint32_t image_flags = 0;
    std::array<char, 256> description{};
    std::uint32_t offset_bmap = 0;
    std::uint32_t offset_data = 0;
    std::uint32_t cylinders = 0, heads = 0, sectors = 0;  // legacy geometry, unused by readers
    std::uint32_t sector_size = vdi::sector_size;
    std::uint64_t disk_size = 0;
    std::uint32_t block_size = default_block_size;
    std::uint32_t block_extra = 0;
    std::uint32_t blocks_in_image = 0;
    std::uint32_t blocks_allocated = 0;
    Uuid uuid_image{};
    Uuid uuid_last_snap{};
    Uuid uuid_link{};    // differencing images: the parent's image UUID
    Uuid uuid_parent{};  // differencing images: the parent's modification UUID
};

Header parse_header(std::span<const std::byte, header_area> bytes) noexcept;
void serialize_header(const Header &header, std::span<std::byte, header_area> out) noexcept;

std::string uuid_string(const Uuid &id);
bool uuid_is_null(const Uuid &id) noexcept;
// The NUL-terminated text of a fixed-size field, without a trailing newline.
std::string field_text(std::span<const char> field);
std::string_view image_type_name(std::uint32_t type) noexcept;

}  // namespace hypersdk::format::vdi
