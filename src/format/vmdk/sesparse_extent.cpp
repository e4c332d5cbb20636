// Space-efficient sparse extents (seSparse, the snapshot deltas of VMFS 6): a constant header, a
// volatile header, a grain directory and grain tables of 64-bit entries, and 4 KiB grains.
//
// Directory entries: 0 = no table, 0x1000_0000_xxxx_xxxx = table number xxxx_xxxx in the table area.
// Table entries, by top nibble: 0 = unallocated (whole entry zero), 1 = unmapped and 2 = zero (both
// read as zeros), 3 = allocated, the grain number split as bits 48..59 (low 12 bits of the number)
// and bits 0..47 (the rest). The format is not published; this follows what qemu accepts, as strictly.
#include "format/vmdk/extent_open.hpp"
#include "format/vmdk/grain_map.hpp"
#include "format/vmdk/limits.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

namespace hypersdk::format::vmdk {

Result<std::unique_ptr<ExtentReader>> open_sesparse_extent(std::shared_ptr<ExtentFile> file, std::string format) {
    const ExtentFile &f = *file;
    if (f.size < sector_size) return fail_corrupt(fmt::format("seSparse extent '{}' is shorter than its header", f.path));
    std::array<std::byte, 512> sector{};
    HSDK_TRYV(f.file.read_exact(0, sector));
    const SeSparseConstHeader h = parse_sesparse_const_header(sector);
    auto bad = [&](std::string why) { return fail_corrupt(fmt::format("seSparse extent '{}': {}", f.path, why)); };
    auto unsupported = [&](std::string why) { return fail_unsupported(fmt::format("seSparse extent '{}': {}", f.path, why)); };
    if (h.magic != sesparse_const_magic) return bad(fmt::format("bad header magic {:#x}", h.magic));
    if (h.version != sesparse_version) return unsupported(fmt::format("version {:#x}", h.version));
    if (h.grain_size != sesparse_grain_sectors) return unsupported(fmt::format("grain size of {} sectors", h.grain_size));
    if (h.grain_table_size != sesparse_table_sectors) return unsupported(fmt::format("grain table size of {} sectors", h.grain_table_size));
    if (h.flags != 0) return unsupported(fmt::format("flags {:#x}", h.flags));
    for (auto r : h.reserved)
        if (r != 0) return unsupported("non-zero reserved header fields");
    if (!h.padding_zero) return unsupported("non-zero header padding");
    if (h.capacity > max_disk_bytes / sector_size) return bad(fmt::format("capacity of {} sectors", h.capacity));

    // Every region named in sectors must fit in the file.
    auto region = [&](std::uint64_t offset, std::uint64_t size, std::string_view what) -> Result<FileRange> {
        auto at = sectors_to_bytes(offset);
        auto len = sectors_to_bytes(size);
        if (!at || !len || !inside_file(*at, *len, f.size))
            return bad(fmt::format("{} (sector {}, {} sectors) lies outside the file ({} bytes)", what, offset, size, f.size));
        return FileRange{*at, *len, std::string(what)};
    };
    HSDK_TRY(auto volatile_region, region(h.volatile_header_offset, 1, "volatile header"));
    std::array<std::byte, 512> vsector{};
    HSDK_TRYV(f.file.read_exact(volatile_region.offset, vsector));
    const SeSparseVolatileHeader v = parse_sesparse_volatile_header(vsector);
    if (v.magic != sesparse_volatile_magic) return bad(fmt::format("bad volatile header magic {:#x}", v.magic));
    if (v.replay_journal != 0) return unsupported("the journal needs replaying (the delta was not closed cleanly)");
    if (!v.padding_zero) return unsupported("non-zero volatile header padding");

    HSDK_TRY(auto gd_region, region(h.grain_dir_offset, h.grain_dir_size, "grain directory"));
    HSDK_TRY(auto tables_region, region(h.grain_tables_offset, h.grain_tables_size, "grain table area"));
    HSDK_TRY(auto grains_region, region(h.grains_offset, h.grains_size, "grain area"));
    if (h.grains_offset == 0) return bad("grain area starts at sector 0");

    const std::uint64_t grains = (h.capacity + sesparse_grain_sectors - 1) / sesparse_grain_sectors;
    const std::uint64_t needed = (grains + sesparse_gtes_per_gt - 1) / sesparse_gtes_per_gt;
    const std::uint64_t gd_entries = gd_region.length / 8;
    if (gd_entries < needed)
        return bad(fmt::format("grain directory has {} entries, a capacity of {} sectors needs {}", gd_entries, h.capacity, needed));
    if (needed * 8 > max_directory_bytes) return unsupported(fmt::format("grain directory of {} entries is too large", needed));

    GrainMapConfig cfg;
    std::vector<std::byte> gd(static_cast<std::size_t>(needed * 8));
    if (needed != 0) HSDK_TRYV(f.file.read_exact(gd_region.offset, gd));
    const std::uint64_t table_count = h.grain_tables_size / sesparse_table_sectors;
    cfg.directory.resize(static_cast<std::size_t>(needed));
    for (std::size_t i = 0; i < cfg.directory.size(); ++i) {
        const std::uint64_t e = le64(gd.data(), i * 8);
        if (e == 0) {
            cfg.directory[i] = table_none;
            continue;
        }
        if ((e & 0xffffffff00000000ULL) != 0x1000000000000000ULL)
            return bad(fmt::format("grain directory entry {} has an invalid value {:#x}", i, e));
        const std::uint64_t index = e & 0xffffffffULL;
        if (index >= table_count)
            return bad(fmt::format("grain directory entry {} names grain table {}, the table area holds {}", i, index, table_count));
        cfg.directory[i] = tables_region.offset + index * sesparse_table_sectors * sector_size;
    }

    constexpr std::uint64_t grain_bytes = sesparse_grain_sectors * sector_size;
    const std::uint64_t grain_slots = grains_region.length / grain_bytes;
    const std::uint64_t grains_at = grains_region.offset;
    cfg.decode = [grain_slots, grains_at](std::uint64_t e) -> Result<std::uint64_t> {
        switch (e >> 60) {
        case 0x0:
            if (e != 0) return fail(Errc::corrupt_image, fmt::format("unallocated entry with stray bits {:#x}", e));
            return grain_hole;
        case 0x1:  // unmapped by the guest (SCSI UNMAP): reads as zeros
        case 0x2: return grain_zero;
        case 0x3: {
            const std::uint64_t index = ((e & 0x0fff000000000000ULL) >> 48) | ((e & 0x0000ffffffffffffULL) << 12);
            if (index >= grain_slots)
                return fail(Errc::corrupt_image, fmt::format("grain number {} lies outside the grain area ({} grains)", index, grain_slots));
            return grains_at + index * grain_bytes;
        }
        default: return fail(Errc::corrupt_image, fmt::format("entry {:#x} has an unknown type", e));
        }
    };
    cfg.what = "seSparse extent";
    cfg.format = std::move(format);
    cfg.capacity = h.capacity * sector_size;
    cfg.grain = grain_bytes;
    cfg.gtes_per_gt = sesparse_gtes_per_gt;
    cfg.entry_bytes = 8;
    cfg.metadata.push_back({0, sector_size, "constant header"});
    cfg.metadata.push_back(volatile_region);
    cfg.metadata.push_back(gd_region);
    for (auto [offset, size, what] : {std::tuple{h.journal_header_offset, h.journal_header_size, "journal header"},
                                      std::tuple{h.journal_offset, h.journal_size, "journal"},
                                      std::tuple{h.free_bitmap_offset, h.free_bitmap_size, "free bitmap"},
                                      std::tuple{h.backmap_offset, h.backmap_size, "back map"}}) {
        if (size == 0) continue;
        auto r = region(offset, size, what);
        if (r) cfg.metadata.push_back(std::move(r).value());
        else cfg.findings.push_back(fmt::format("{} (sector {}, {} sectors) lies outside the file", what, offset, size));
    }
    cfg.extra = {{"free-grain-tables", v.free_gt_number}, {"next-transaction", v.next_txn_seq_number}};
    return GrainMapExtent::create(std::move(file), std::move(cfg));
}

}  // namespace hypersdk::format::vmdk
