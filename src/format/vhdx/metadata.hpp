// The metadata region: its table and the system metadata items ([MS-VHDX] 2.6).
#pragma once

#include "format/vhdx/guid.hpp"
#include "format/vhdx/headers.hpp"
#include "format/vhdx/image_file.hpp"

#include <cstdint>
#include <vector>

namespace hypersdk::format::vhdx {

struct MetadataEntry {
    Guid guid;
    std::uint32_t offset = 0;  // relative to the start of the metadata region
    std::uint32_t length = 0;
    std::uint32_t flags = 0;
};

struct Metadata {
    std::vector<MetadataEntry> entries;  // the whole table, as written
    std::uint32_t block_size = 0;
    bool leave_blocks_allocated = false;
    bool has_parent = false;
    std::uint64_t virtual_size = 0;
    std::uint32_t logical_sector_size = 0;
    std::uint32_t physical_sector_size = 0;
    Guid virtual_disk_id;                   // Page 83 data
    std::vector<std::byte> parent_locator;  // the raw item, read when has_parent
};

// Reads and validates the table and the items every VHDX needs (File Parameters, Virtual Disk Size,
// Page 83 Data, Logical and Physical Sector Size, and the Parent Locator of a differencing disk).
Result<Metadata> read_metadata(const ImageFile &file, const RegionEntry &region);

// The metadata region of a new image: table at 0, items from 64 KiB, as qemu lays it out.
// `out` must be at least 64 KiB + 256 bytes; the rest stays zero.
void serialize_metadata(const Metadata &metadata, std::span<std::byte> out);

}  // namespace hypersdk::format::vhdx
