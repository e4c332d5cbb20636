#include "format/vhdx/bat.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::format::vhdx {

namespace {
// Metadata this reader keeps in memory per image: BAT plus sector bitmaps.
constexpr std::uint64_t max_table_bytes = 256 * MiB;

const char *state_name(std::uint8_t s) {
    switch (s) {
    case 0: return "NOT_PRESENT";
    case 1: return "UNDEFINED";
    case 2: return "ZERO";
    case 3: return "UNMAPPED";
    case 5: return "UNMAPPED (v0.95)";
    case 6: return "FULLY_PRESENT";
    case 7: return "PARTIALLY_PRESENT";
    default: return "invalid";
    }
}
}  // namespace

BatGeometry BatGeometry::compute(std::uint64_t virtual_size, std::uint32_t block_size, std::uint32_t logical_sector_size,
                                 bool differencing) {
    BatGeometry g;
    g.virtual_size = virtual_size;
    g.block_size = block_size;
    g.logical_sector_size = logical_sector_size;
    g.differencing = differencing;
    // 2^23 sectors per bitmap block; block sizes 1..256 MiB and sectors of 512 or 4096 bytes keep
    // this between 16 and 32768, a power of two.
    g.chunk_ratio = sectors_per_bitmap_block * logical_sector_size / block_size;
    g.payload_blocks = (virtual_size + block_size - 1) / block_size;
    g.bitmap_blocks = (g.payload_blocks + g.chunk_ratio - 1) / g.chunk_ratio;
    if (differencing)
        g.total_entries = g.bitmap_blocks * (g.chunk_ratio + 1);
    else
        g.total_entries = g.payload_blocks == 0 ? 0 : g.payload_blocks + (g.payload_blocks - 1) / g.chunk_ratio;
    return g;
}

Result<Bat> Bat::load(const ImageFile &file, const RegionEntry &region, const BatGeometry &geometry,
                      std::vector<FileRange> reserved) {
    Bat bat;
    bat.geometry_ = geometry;
    bat.reserved_ = std::move(reserved);
    bat.file_size_ = file.size();
    const std::uint64_t bytes = geometry.total_entries * 8;
    if (bytes > region.length)
        return fail_corrupt(fmt::format("BAT region ({} bytes at {:#x}) is too small for the {} entries a disk of {} bytes "
                                        "with {} byte blocks needs",
                                        region.length, region.offset, geometry.total_entries, geometry.virtual_size,
                                        geometry.block_size));
    if (bytes > max_table_bytes)
        return fail_unsupported(fmt::format("BAT of {} bytes exceeds this reader's {} MiB limit", bytes, max_table_bytes / MiB));
    std::vector<std::byte> raw(static_cast<std::size_t>(bytes));
    HSDK_TRYV(file.read(region.offset, raw));
    bat.entries_.resize(static_cast<std::size_t>(geometry.total_entries));
    for (std::size_t i = 0; i < bat.entries_.size(); ++i) bat.entries_[i] = le64(raw.data(), i * 8);
    raw = {};

    // Allocated blocks, to find any two that share bytes of the file.
    struct Placed {
        std::uint64_t begin, end, index;
    };
    std::vector<Placed> placed;
    const std::uint64_t stride = geometry.chunk_ratio + 1;
    for (std::uint64_t i = 0; i < geometry.total_entries; ++i) {
        const std::uint64_t e = bat.entries_[static_cast<std::size_t>(i)];
        const std::uint8_t s = entry_state(e);
        const std::uint64_t off = entry_offset(e);
        if (off == 0) continue;
        const bool is_bitmap = i % stride == geometry.chunk_ratio;
        std::uint64_t len = 0;
        if (is_bitmap) {
            if (geometry.differencing && s == sector_bitmap_present) len = sector_bitmap_block_size;
        } else if (s == static_cast<std::uint8_t>(BlockState::fully_present) ||
                   s == static_cast<std::uint8_t>(BlockState::partially_present)) {
            const std::uint64_t block = i - i / stride;
            len = geometry.block_bytes(block);
            ++bat.allocated_blocks_;
        }
        // A payload block occupies its whole size in the file even when the disk ends inside it.
        const std::uint64_t occupied = is_bitmap ? len : geometry.block_size;
        if (len == 0 || off > UINT64_MAX - occupied) continue;
        placed.push_back({off, off + len, i});
        const std::uint64_t end = std::min(off + occupied, std::max(off + len, file.size()));
        bat.allocated_end_ = std::max(bat.allocated_end_, end);
    }
    std::sort(placed.begin(), placed.end(), [](const Placed &a, const Placed &b) { return a.begin < b.begin; });
    std::uint64_t reach = 0;
    std::size_t reach_index = 0;
    for (std::size_t k = 0; k < placed.size(); ++k) {
        if (k > 0 && placed[k].begin < reach) {
            if (bat.overlapping_.empty()) bat.overlapping_.assign(static_cast<std::size_t>(geometry.total_entries), false);
            bat.overlapping_[static_cast<std::size_t>(placed[k].index)] = true;
            bat.overlapping_[static_cast<std::size_t>(placed[reach_index].index)] = true;
        }
        if (placed[k].end > reach) {
            reach = placed[k].end;
            reach_index = k;
        }
    }
    return bat;
}

std::optional<std::string> Bat::placement_problem(std::uint64_t index, std::uint64_t offset, std::uint64_t length,
                                                  const char *what) const {
    if (offset < header_section_size)
        return fmt::format("BAT entry {} ({}) points into the header section (offset {:#x})", index, what, offset);
    if (offset > file_size_ || length > file_size_ - offset)
        return fmt::format("BAT entry {} ({}, {:#x}+{:#x}) lies beyond the end of the file ({:#x} bytes)", index, what,
                           offset, length, file_size_);
    for (const auto &r : reserved_)
        if (offset < r.end && r.begin < offset + length)
            return fmt::format("BAT entry {} ({}, {:#x}+{:#x}) overlaps the {}", index, what, offset, length, r.name);
    if (!overlapping_.empty() && overlapping_[static_cast<std::size_t>(index)])
        return fmt::format("BAT entry {} ({}, {:#x}+{:#x}) overlaps another block of the file", index, what, offset, length);
    return std::nullopt;
}

std::optional<std::string> Bat::entry_problem(std::uint64_t index) const {
    const std::uint64_t stride = geometry_.chunk_ratio + 1;
    const std::uint64_t e = entries_[static_cast<std::size_t>(index)];
    const std::uint8_t s = entry_state(e);
    if (index % stride == geometry_.chunk_ratio) {
        // Sector bitmap entries matter only to differencing disks.
        if (!geometry_.differencing || s == sector_bitmap_not_present) return std::nullopt;
        if (s != sector_bitmap_present)
            return fmt::format("BAT entry {} (sector bitmap) has invalid state {}", index, s);
        return placement_problem(index, entry_offset(e), sector_bitmap_block_size, "sector bitmap block");
    }
    const std::uint64_t block = index - index / stride;
    switch (static_cast<BlockState>(s)) {
    case BlockState::not_present:
    case BlockState::undefined:
    case BlockState::zero:
    case BlockState::unmapped:
    case BlockState::unmapped_v095: return std::nullopt;
    case BlockState::partially_present:
        if (!geometry_.differencing)
            return fmt::format("BAT entry {} (payload block {}) is PARTIALLY_PRESENT in a disk without a parent", index, block);
        [[fallthrough]];
    case BlockState::fully_present: {
        const std::string what = fmt::format("payload block {}", block);
        if (auto p = placement_problem(index, entry_offset(e), geometry_.block_bytes(block), what.c_str())) return p;
        if (s == static_cast<std::uint8_t>(BlockState::partially_present)) {
            const std::uint64_t bi = geometry_.bitmap_index(block / geometry_.chunk_ratio);
            const std::uint64_t be = entries_[static_cast<std::size_t>(bi)];
            if (entry_state(be) != sector_bitmap_present)
                return fmt::format("BAT entry {} (payload block {}) is PARTIALLY_PRESENT but its sector bitmap (entry {}) is "
                                   "not present",
                                   index, block, bi);
            if (auto p = entry_problem(bi)) return p;
        }
        return std::nullopt;
    }
    }
    return fmt::format("BAT entry {} (payload block {}) has invalid state {} ({})", index, block, s, state_name(s));
}

std::optional<std::string> Bat::block_problem(std::uint64_t block) const {
    return entry_problem(geometry_.payload_index(block));
}

std::vector<std::string> Bat::all_problems(std::size_t limit) const {
    std::vector<std::string> out;
    for (std::uint64_t i = 0; i < geometry_.total_entries && out.size() < limit; ++i)
        if (auto p = entry_problem(i)) out.push_back(std::move(*p));
    return out;
}

std::uint64_t Bat::problem_count() const {
    std::uint64_t n = 0;
    for (std::uint64_t i = 0; i < geometry_.total_entries; ++i)
        if (entry_problem(i)) ++n;
    return n;
}

Result<void> Bat::load_bitmaps(const ImageFile &file) {
    if (!geometry_.differencing) return success();
    const std::uint64_t per_block = geometry_.bitmap_bytes_per_block();
    std::uint64_t total = entries_.size() * 8;
    std::vector<std::uint64_t> partial;
    for (std::uint64_t chunk = 0; chunk < geometry_.bitmap_blocks; ++chunk) {
        partial.clear();
        const std::uint64_t first = chunk * geometry_.chunk_ratio;
        const std::uint64_t last = std::min(geometry_.payload_blocks, first + geometry_.chunk_ratio);
        for (std::uint64_t b = first; b < last; ++b)
            if (entry_state(payload_entry(b)) == static_cast<std::uint8_t>(BlockState::partially_present) && !block_problem(b))
                partial.push_back(b);
        if (partial.empty()) continue;
        // One read covering this chunk's partially present blocks.
        const std::uint64_t lo = (partial.front() - first) * per_block;
        const std::uint64_t hi = (partial.back() - first + 1) * per_block;
        total += hi - lo;
        if (total > max_table_bytes)
            return fail_unsupported(fmt::format("sector bitmaps exceed this reader's {} MiB metadata limit", max_table_bytes / MiB));
        std::vector<std::uint8_t> span(static_cast<std::size_t>(hi - lo));
        const std::uint64_t sb = entry_offset(entries_[static_cast<std::size_t>(geometry_.bitmap_index(chunk))]);
        HSDK_TRYV(file.read(sb + lo, std::as_writable_bytes(std::span(span))));
        for (const std::uint64_t b : partial) {
            const auto at = static_cast<std::ptrdiff_t>((b - first) * per_block - lo);
            bitmaps_.emplace(b, std::vector<std::uint8_t>(span.begin() + at, span.begin() + at + static_cast<std::ptrdiff_t>(per_block)));
        }
    }
    return success();
}

const std::vector<std::uint8_t> *Bat::bitmap(std::uint64_t block) const {
    auto it = bitmaps_.find(block);
    return it == bitmaps_.end() ? nullptr : &it->second;
}

}  // namespace hypersdk::format::vhdx
