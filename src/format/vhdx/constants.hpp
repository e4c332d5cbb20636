// Fixed facts of the VHDX format ([MS-VHDX]): offsets, sizes, signatures, known GUIDs, block states.
#pragma once

#include "format/vhdx/guid.hpp"

#include <cstdint>

namespace hypersdk::format::vhdx {

inline constexpr std::uint64_t KiB = 1024;
inline constexpr std::uint64_t MiB = 1024 * KiB;
inline constexpr std::uint64_t GiB = 1024 * MiB;
inline constexpr std::uint64_t TiB = 1024 * GiB;

// The header section: file type identifier, two headers, two region tables, in 64 KiB slots of 1 MiB.
inline constexpr std::uint64_t file_identifier_offset = 0;
inline constexpr std::uint64_t header1_offset = 64 * KiB;
inline constexpr std::uint64_t header2_offset = 128 * KiB;
inline constexpr std::uint64_t region_table1_offset = 192 * KiB;
inline constexpr std::uint64_t region_table2_offset = 256 * KiB;
inline constexpr std::uint64_t header_section_size = 1 * MiB;
inline constexpr std::size_t header_size = 4 * KiB;         // a header's checksummed size
inline constexpr std::size_t region_table_size = 64 * KiB;  // a region table's checksummed size
inline constexpr std::size_t creator_bytes = 512;           // UTF-16 creator after the signature

inline constexpr std::uint32_t max_region_entries = 2047;
inline constexpr std::uint32_t max_metadata_entries = 2047;
inline constexpr std::size_t metadata_table_size = 64 * KiB;
inline constexpr std::uint32_t max_metadata_item_size = 1 * MiB;

inline constexpr std::uint32_t min_block_size = 1 * MiB;
inline constexpr std::uint32_t max_block_size = 256 * MiB;
inline constexpr std::uint64_t max_virtual_size = 64 * TiB;
inline constexpr std::uint64_t sectors_per_bitmap_block = std::uint64_t{1} << 23;  // one 1 MiB sector bitmap block
inline constexpr std::uint64_t sector_bitmap_block_size = 1 * MiB;

inline constexpr std::size_t log_sector_size = 4 * KiB;
inline constexpr std::size_t log_entry_header_size = 64;
inline constexpr std::size_t log_descriptor_size = 32;

// Signatures as they appear in the file (ASCII), compared bytewise.
inline constexpr char file_signature[] = "vhdxfile";
inline constexpr char header_signature[] = "head";
inline constexpr char region_signature[] = "regi";
inline constexpr char metadata_signature[] = "metadata";
inline constexpr char log_entry_signature[] = "loge";
inline constexpr char data_descriptor_signature[] = "desc";
inline constexpr char zero_descriptor_signature[] = "zero";
inline constexpr char data_sector_signature[] = "data";

// Region table entries.
inline constexpr Guid bat_region_guid =
    Guid::from_fields(0x2DC27766, 0xF623, 0x4200, {0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08});
inline constexpr Guid metadata_region_guid =
    Guid::from_fields(0x8B7CA206, 0x4790, 0x4B9A, {0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E});

// Metadata items.
inline constexpr Guid file_parameters_guid =
    Guid::from_fields(0xCAA16737, 0xFA36, 0x4D43, {0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B});
inline constexpr Guid virtual_disk_size_guid =
    Guid::from_fields(0x2FA54224, 0xCD1B, 0x4876, {0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8});
inline constexpr Guid page83_data_guid =
    Guid::from_fields(0xBECA12AB, 0xB2E6, 0x4523, {0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46});
inline constexpr Guid logical_sector_size_guid =
    Guid::from_fields(0x8141BF1D, 0xA96F, 0x4709, {0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F});
inline constexpr Guid physical_sector_size_guid =
    Guid::from_fields(0xCDA348C7, 0x445D, 0x4471, {0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56});
inline constexpr Guid parent_locator_guid =
    Guid::from_fields(0xA8D35F2D, 0xB30B, 0x454D, {0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C});
// Locator type of a VHDX parent.
inline constexpr Guid vhdx_parent_locator_type =
    Guid::from_fields(0xB04AEFB7, 0xD19E, 0x4A81, {0xB7, 0x89, 0x25, 0xB8, 0xE9, 0x44, 0x59, 0x13});

// Metadata table entry flags.
inline constexpr std::uint32_t metadata_flag_is_user = 0x1;
inline constexpr std::uint32_t metadata_flag_is_virtual_disk = 0x2;
inline constexpr std::uint32_t metadata_flag_is_required = 0x4;

// File parameters flags.
inline constexpr std::uint32_t leave_blocks_allocated_flag = 0x1;
inline constexpr std::uint32_t has_parent_flag = 0x2;

// BAT entry states (bits 0..2); the file offset in MiB lives in bits 20..63.
enum class BlockState : std::uint8_t {
    not_present = 0,
    undefined = 1,
    zero = 2,
    unmapped = 3,
    unmapped_v095 = 5,  // UNMAPPED in the v0.95 draft; qemu accepts it too
    fully_present = 6,
    partially_present = 7,
};
inline constexpr std::uint8_t sector_bitmap_not_present = 0;
inline constexpr std::uint8_t sector_bitmap_present = 6;
inline constexpr std::uint64_t bat_offset_mask = ~((std::uint64_t{1} << 20) - 1);

}  // namespace hypersdk::format::vhdx
