// Hosted sparse extents (KDMV header, versions 1..3): monolithicSparse files, the pieces of
// twoGbMaxExtentSparse disks, and streamOptimized streams (compressed grains behind markers, grain
// directory at the end, found through the footer or rebuilt from the markers).
#include "format/vmdk/extent_open.hpp"
#include "format/vmdk/grain_map.hpp"
#include "format/vmdk/limits.hpp"
#include "format/vmdk/stream_scan.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

namespace hypersdk::format::vmdk {
namespace {

struct Footer {
    bool present = false;
    SparseHeader header;
};

// The last three sectors of a finished stream: footer marker, footer (a header copy), end-of-stream.
Result<Footer> read_footer(const ExtentFile &f) {
    Footer out;
    if (f.size < 4 * sector_size) return out;
    std::array<std::byte, 3 * sector_size> tail{};
    HSDK_TRYV(f.file.read_exact(f.size - tail.size(), tail));
    const Marker footer_marker = parse_marker(std::span<const std::byte>(tail).first(16));
    const Marker eos = parse_marker(std::span<const std::byte>(tail).subspan(2 * sector_size, 16));
    const auto header = std::span<const std::byte, 512>(tail.data() + sector_size, 512);
    if (footer_marker.size != 0 || footer_marker.type != static_cast<std::uint32_t>(MarkerType::footer) || !has_kdmv_magic(header) ||
        eos.value != 0 || eos.size != 0 || eos.type != static_cast<std::uint32_t>(MarkerType::end_of_stream))
        return out;
    out.present = true;
    out.header = parse_sparse_header(header);
    return out;
}

Result<void> validate_header(const SparseHeader &h, const std::string &path, std::string_view which) {
    auto bad = [&](std::string why) { return fail_corrupt(fmt::format("sparse extent '{}': {} {}", path, which, why)); };
    if (h.version < 1 || h.version > 3)
        return fail_unsupported(fmt::format("sparse extent '{}': {} has version {} (only 1, 2 and 3 exist)", path, which, h.version));
    if (h.compress_algorithm != compression_none && h.compress_algorithm != compression_deflate)
        return fail_unsupported(fmt::format("sparse extent '{}': compression algorithm {}", path, h.compress_algorithm));
    if (!is_power_of_two(h.grain_size) || h.grain_size * sector_size > max_grain_bytes)
        return bad(fmt::format("has a grain size of {} sectors (must be a power of two up to {} sectors)", h.grain_size,
                               max_grain_bytes / sector_size));
    if (h.gtes_per_gt != hosted_gtes_per_gt)
        return bad(fmt::format("has {} entries per grain table (hosted sparse extents have {})", h.gtes_per_gt, hosted_gtes_per_gt));
    if (h.capacity > max_disk_bytes / sector_size)
        return bad(fmt::format("claims a capacity of {} sectors (more than {} bytes)", h.capacity, max_disk_bytes));
    if ((h.flags & flag_newline_detect) != 0 && !h.newline_check_intact())
        return bad("has damaged line-ending check bytes (was the file transferred in text mode?)");
    return success();
}

struct Directory {
    std::vector<std::uint64_t> entries;
    std::string problem;  // empty when usable
    std::size_t beyond_eof = 0;
};

// Reads a grain directory of `count` entries at `sector`; decodes sectors to byte offsets.
Result<Directory> read_directory(const ExtentFile &f, std::uint64_t sector, std::uint64_t count, bool zeroed_tables) {
    Directory d;
    if (count == 0) return d;  // an empty disk needs no tables
    const auto at = sectors_to_bytes(sector);
    const std::uint64_t bytes = count * 4;
    if (sector == 0 || !at || !inside_file(*at, bytes, f.size)) {
        d.problem = fmt::format("grain directory at sector {} ({} entries) lies outside the file ({} bytes)", sector, count, f.size);
        return d;
    }
    std::vector<std::byte> raw(static_cast<std::size_t>(bytes));
    HSDK_TRYV(f.file.read_exact(*at, raw));
    d.entries.resize(static_cast<std::size_t>(count));
    const std::uint64_t table_bytes = std::uint64_t{hosted_gtes_per_gt} * 4;
    for (std::size_t i = 0; i < d.entries.size(); ++i) {
        const std::uint32_t v = le32(raw.data(), i * 4);
        if (v == 0) {
            d.entries[i] = table_none;
        } else if (v == gte_zeroed && zeroed_tables) {
            d.entries[i] = table_zero;
        } else {
            d.entries[i] = std::uint64_t{v} * sector_size;
            if (!inside_file(d.entries[i], table_bytes, f.size)) ++d.beyond_eof;
        }
    }
    if (d.beyond_eof != 0)
        d.problem = fmt::format("grain directory at sector {} points {} grain table(s) past the end of the file", sector, d.beyond_eof);
    return d;
}

}  // namespace

Result<HostedSparse> open_hosted_sparse(std::shared_ptr<ExtentFile> file, std::string format) {
    const ExtentFile &f = *file;
    if (f.size < sector_size) return fail_corrupt(fmt::format("sparse extent '{}' is shorter than its 512-byte header", f.path));
    std::array<std::byte, 512> sector{};
    HSDK_TRYV(f.file.read_exact(0, sector));
    if (!has_kdmv_magic(sector)) return fail_corrupt(fmt::format("'{}' is not a hosted sparse extent (no KDMV signature)", f.path));
    const SparseHeader header = parse_sparse_header(sector);
    HSDK_TRYV(validate_header(header, f.path, "header"));

    GrainMapConfig cfg;
    SparseHeader h = header;
    std::string directory_source = "header";
    const bool stream = header.compressed() && header.has_markers();
    if (stream || header.gd_offset == gd_at_end) {
        HSDK_TRY(auto footer, read_footer(f));
        if (footer.present) {
            HSDK_TRYV(validate_header(footer.header, f.path, "footer"));
            if (footer.header.capacity != header.capacity || footer.header.grain_size != header.grain_size ||
                footer.header.compress_algorithm != header.compress_algorithm)
                cfg.findings.push_back("header and footer disagree on capacity, grain size or compression");
            if (header.gd_offset != gd_at_end && header.gd_offset != footer.header.gd_offset)
                cfg.findings.push_back(fmt::format("header names grain directory sector {}, the footer sector {} (the footer wins)",
                                                   header.gd_offset, footer.header.gd_offset));
            // The footer is written last, after every grain: it is the authority.
            h = footer.header;
            directory_source = "footer";
            cfg.metadata.push_back({f.size - 3 * sector_size, 3 * sector_size, "footer"});
        }
    }

    const std::uint64_t grain_bytes = h.grain_size * sector_size;
    const std::uint64_t capacity_bytes = h.capacity * sector_size;
    const std::uint64_t grains = (h.capacity + h.grain_size - 1) / h.grain_size;
    const std::uint64_t tables = (grains + hosted_gtes_per_gt - 1) / hosted_gtes_per_gt;
    if (tables * 4 > max_directory_bytes)
        return fail_unsupported(fmt::format("sparse extent '{}': grain directory of {} entries exceeds {} bytes", f.path, tables, max_directory_bytes));
    const bool zeroed = (h.flags & flag_zeroed_grain_gte) != 0;

    cfg.metadata.push_back({0, sector_size, "header"});
    if (h.descriptor_offset != 0 && h.descriptor_size != 0) {
        auto at = sectors_to_bytes(h.descriptor_offset);
        auto len = sectors_to_bytes(h.descriptor_size);
        if (at && len) cfg.metadata.push_back({*at, *len, "embedded descriptor"});
    }

    // The grain directory: primary, else the redundant copy, else (streams) the markers.
    bool use_scan = h.gd_offset == gd_at_end;
    if (use_scan && !stream)
        return fail_corrupt(fmt::format("sparse extent '{}': grain directory is at the end of the stream but there is no footer", f.path));
    if (!use_scan) {
        HSDK_TRY(auto primary, read_directory(f, h.gd_offset, tables, zeroed));
        Directory chosen;
        if (primary.problem.empty()) {
            chosen = std::move(primary);
        } else {
            Directory redundant;
            if ((h.flags & flag_redundant_gt) != 0 && h.rgd_offset != 0) {
                HSDK_TRY(auto r, read_directory(f, h.rgd_offset, tables, zeroed));
                redundant = std::move(r);
            }
            if ((h.flags & flag_redundant_gt) != 0 && h.rgd_offset != 0 && redundant.problem.empty()) {
                cfg.findings.push_back(primary.problem + "; using the redundant grain directory");
                chosen = std::move(redundant);
                directory_source = "redundant";
            } else if (stream) {
                cfg.findings.push_back(primary.problem + "; grain map rebuilt from the stream markers");
                use_scan = true;
            } else if (primary.entries.empty()) {
                return fail_corrupt(fmt::format("sparse extent '{}': {}", f.path, primary.problem));
            } else {
                // Tables inside the file still serve their grains; the others fail when touched.
                cfg.findings.push_back(primary.problem);
                chosen = std::move(primary);
            }
        }
        if (!use_scan) {
            cfg.directory = std::move(chosen.entries);
            const std::uint64_t gd_sector = directory_source == "redundant" ? h.rgd_offset : h.gd_offset;
            cfg.metadata.push_back({gd_sector * sector_size, tables * 4, "grain directory"});
        }
    }
    // The redundant tables are metadata too: grains must not overlap them.
    if ((h.flags & flag_redundant_gt) != 0 && h.rgd_offset != 0 && directory_source != "redundant") {
        HSDK_TRY(auto r, read_directory(f, h.rgd_offset, tables, zeroed));
        if (!r.entries.empty()) {
            cfg.metadata.push_back({h.rgd_offset * sector_size, tables * 4, "redundant grain directory"});
            for (std::size_t i = 0; i < r.entries.size(); ++i)
                if (r.entries[i] != table_none && r.entries[i] != table_zero)
                    cfg.metadata.push_back({r.entries[i], std::uint64_t{hosted_gtes_per_gt} * 4, fmt::format("redundant grain table {}", i)});
        }
    }
    if (use_scan) {
        HSDK_TRY(auto scanned, scan_stream_markers(f, h));
        cfg.scanned = true;
        cfg.scanned_grains = std::move(scanned.grains);
        for (auto &finding : scanned.findings) cfg.findings.push_back(std::move(finding));
        if (h.gd_offset == gd_at_end) cfg.findings.push_back("stream has no footer; grain map rebuilt from the stream markers");
        directory_source = "markers";
    }

    cfg.what = "sparse extent";
    cfg.format = std::move(format);
    cfg.capacity = capacity_bytes;
    cfg.grain = grain_bytes;
    cfg.gtes_per_gt = hosted_gtes_per_gt;
    cfg.entry_bytes = 4;
    cfg.compressed = h.compressed();
    cfg.markers = h.has_markers();
    cfg.dirty = header.unclean_shutdown != 0;
    cfg.decode = [zeroed](std::uint64_t raw) -> Result<std::uint64_t> {
        if (raw == 0) return grain_hole;
        if (raw == gte_zeroed && zeroed) return grain_zero;
        return raw * sector_size;
    };
    cfg.extra = {{"sparse-version", h.version},
                 {"flags", fmt::format("{:#x}", h.flags)},
                 {"grain-directory", directory_source},
                 {"unclean-shutdown", header.unclean_shutdown != 0}};

    HostedSparse out;
    out.header = h;
    HSDK_TRY(out.reader, GrainMapExtent::create(std::move(file), std::move(cfg)));
    return out;
}

}  // namespace hypersdk::format::vmdk
