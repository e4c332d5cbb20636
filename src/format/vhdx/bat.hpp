// The Block Allocation Table: payload block entries with sector bitmap entries interleaved every
// chunk ratio entries ([MS-VHDX] 2.5), its validation, and the sector bitmaps of a differencing disk.
#pragma once

#include "format/vhdx/constants.hpp"
#include "format/vhdx/headers.hpp"
#include "format/vhdx/image_file.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace hypersdk::format::vhdx {

struct BatGeometry {
    std::uint64_t virtual_size = 0;
    std::uint32_t block_size = 0;
    std::uint32_t logical_sector_size = 0;
    bool differencing = false;
    std::uint64_t chunk_ratio = 0;     // payload blocks per sector bitmap block
    std::uint64_t payload_blocks = 0;
    std::uint64_t bitmap_blocks = 0;
    std::uint64_t total_entries = 0;   // as the spec counts them for this kind of disk

    // block_size and logical_sector_size must already be validated (powers of two in range).
    static BatGeometry compute(std::uint64_t virtual_size, std::uint32_t block_size, std::uint32_t logical_sector_size,
                               bool differencing);

    [[nodiscard]] std::uint64_t payload_index(std::uint64_t block) const noexcept { return block + block / chunk_ratio; }
    [[nodiscard]] std::uint64_t bitmap_index(std::uint64_t chunk) const noexcept {
        return chunk * (chunk_ratio + 1) + chunk_ratio;
    }
    // Bytes of the virtual disk inside payload block `block` (the last one may be short).
    [[nodiscard]] std::uint64_t block_bytes(std::uint64_t block) const noexcept {
        const std::uint64_t start = block * block_size;
        return std::min<std::uint64_t>(block_size, virtual_size - start);
    }
    // Bytes of sector bitmap describing one payload block (one bit per logical sector).
    [[nodiscard]] std::uint64_t bitmap_bytes_per_block() const noexcept { return block_size / logical_sector_size / 8; }
};

inline std::uint8_t entry_state(std::uint64_t entry) noexcept { return static_cast<std::uint8_t>(entry & 7); }
inline std::uint64_t entry_offset(std::uint64_t entry) noexcept { return entry & bat_offset_mask; }
inline std::uint64_t make_entry(std::uint8_t state, std::uint64_t offset) noexcept {
    return (offset & bat_offset_mask) | state;
}

struct FileRange {
    std::uint64_t begin = 0, end = 0;
    std::string name;
};

class Bat {
public:
    // Reads the BAT region (at most 256 MiB of entries) and cross-checks every allocated entry:
    // valid state, inside the file, clear of `reserved` (header section, log, regions) and of each
    // other. Bad entries do not fail the open: reading them does (and check() lists them).
    static Result<Bat> load(const ImageFile &file, const RegionEntry &region, const BatGeometry &geometry,
                            std::vector<FileRange> reserved);

    [[nodiscard]] const BatGeometry &geometry() const noexcept { return geometry_; }
    [[nodiscard]] std::uint64_t payload_entry(std::uint64_t block) const noexcept {
        return entries_[geometry_.payload_index(block)];
    }
    // Why payload block `block` cannot be read, or nullopt when it can.
    [[nodiscard]] std::optional<std::string> block_problem(std::uint64_t block) const;
    // Every problem in the table (for check()).
    [[nodiscard]] std::vector<std::string> all_problems(std::size_t limit) const;
    [[nodiscard]] std::uint64_t problem_count() const;

    // Loads the sector bitmap of every readable PARTIALLY_PRESENT block (differencing disks).
    Result<void> load_bitmaps(const ImageFile &file);
    // Bit i set: logical sector i of the block holds data in this file. Null when not loaded.
    [[nodiscard]] const std::vector<std::uint8_t> *bitmap(std::uint64_t block) const;

    // End of the last allocated payload or bitmap block (for check()'s image end offset).
    [[nodiscard]] std::uint64_t allocated_end() const noexcept { return allocated_end_; }
    [[nodiscard]] std::uint64_t allocated_blocks() const noexcept { return allocated_blocks_; }

private:
    [[nodiscard]] std::optional<std::string> entry_problem(std::uint64_t index) const;
    [[nodiscard]] std::optional<std::string> placement_problem(std::uint64_t index, std::uint64_t offset,
                                                               std::uint64_t length, const char *what) const;

    BatGeometry geometry_;
    std::vector<std::uint64_t> entries_;
    std::vector<FileRange> reserved_;
    std::uint64_t file_size_ = 0;
    std::vector<bool> overlapping_;  // per entry index; empty when no allocated blocks overlap
    std::unordered_map<std::uint64_t, std::vector<std::uint8_t>> bitmaps_;
    std::uint64_t allocated_end_ = 0;
    std::uint64_t allocated_blocks_ = 0;
};

}  // namespace hypersdk::format::vhdx
