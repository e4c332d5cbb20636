// ESX sparse extents ("COWD", the redo logs of vmfsSparse disks): a 2 KiB header, a grain directory
// of 32-bit sector numbers, grain tables of 4096 32-bit sector numbers, and grains. No compression,
// no zeroed-grain entries: an entry of 0 is a hole.
#include "format/vmdk/extent_open.hpp"
#include "format/vmdk/grain_map.hpp"
#include "format/vmdk/limits.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

namespace hypersdk::format::vmdk {

Result<std::unique_ptr<ExtentReader>> open_cowd_extent(std::shared_ptr<ExtentFile> file, std::string format) {
    const ExtentFile &f = *file;
    if (f.size < cowd_header_size)
        return fail_corrupt(fmt::format("COWD extent '{}' is shorter than its {}-byte header", f.path, cowd_header_size));
    std::array<std::byte, cowd_header_size> raw{};
    HSDK_TRYV(f.file.read_exact(0, raw));
    if (!has_cowd_magic(raw)) return fail_corrupt(fmt::format("'{}' is not a COWD extent (no COWD signature)", f.path));
    const CowdHeader h = parse_cowd_header(raw);
    auto bad = [&](std::string why) { return fail_corrupt(fmt::format("COWD extent '{}': {}", f.path, why)); };
    if (h.version != 1) return fail_unsupported(fmt::format("COWD extent '{}' has version {} (only 1 is known)", f.path, h.version));
    if (h.grain_size == 0 || std::uint64_t{h.grain_size} * sector_size > max_grain_bytes)
        return bad(fmt::format("grain size of {} sectors", h.grain_size));
    const std::uint64_t grains = (std::uint64_t{h.capacity} + h.grain_size - 1) / h.grain_size;
    const std::uint64_t needed = (grains + cowd_gtes_per_gt - 1) / cowd_gtes_per_gt;
    if (h.gd_entries < needed)
        return bad(fmt::format("grain directory has {} entries, a capacity of {} sectors needs {}", h.gd_entries, h.capacity, needed));
    const std::uint64_t gd_at = std::uint64_t{h.gd_offset} * sector_size;
    const std::uint64_t gd_bytes = std::uint64_t{h.gd_entries} * 4;
    if (needed != 0 && (h.gd_offset == 0 || !inside_file(gd_at, gd_bytes, f.size)))
        return bad(fmt::format("grain directory at sector {} ({} entries) lies outside the file ({} bytes)", h.gd_offset, h.gd_entries, f.size));
    if (gd_bytes > max_directory_bytes) return bad(fmt::format("grain directory of {} entries is too large", h.gd_entries));

    GrainMapConfig cfg;
    // Only the entries the capacity needs are read; the rest are unused.
    std::vector<std::byte> gd(static_cast<std::size_t>(needed * 4));
    if (needed != 0) HSDK_TRYV(f.file.read_exact(gd_at, gd));
    cfg.directory.resize(static_cast<std::size_t>(needed));
    for (std::size_t i = 0; i < cfg.directory.size(); ++i) {
        const std::uint32_t v = le32(gd.data(), i * 4);
        cfg.directory[i] = v == 0 ? table_none : std::uint64_t{v} * sector_size;
    }
    cfg.what = "COWD extent";
    cfg.format = std::move(format);
    cfg.capacity = std::uint64_t{h.capacity} * sector_size;
    cfg.grain = std::uint64_t{h.grain_size} * sector_size;
    cfg.gtes_per_gt = cowd_gtes_per_gt;
    cfg.entry_bytes = 4;
    cfg.decode = [](std::uint64_t raw_entry) -> Result<std::uint64_t> { return raw_entry == 0 ? grain_hole : raw_entry * sector_size; };
    cfg.metadata.push_back({0, cowd_header_size, "COWD header"});
    if (needed != 0) cfg.metadata.push_back({gd_at, gd_bytes, "grain directory"});
    // Offset 1648: non-zero while the redo log is open (not cleanly closed).
    cfg.dirty = le32(raw.data(), 1648) != 0;
    cfg.extra = {{"cowd-version", h.version}, {"flags", fmt::format("{:#x}", h.flags)}, {"unclean-shutdown", cfg.dirty}};
    return GrainMapExtent::create(std::move(file), std::move(cfg));
}

}  // namespace hypersdk::format::vmdk
