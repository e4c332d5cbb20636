#include "format/vmdk/stream_scan.hpp"

#include "format/vmdk/limits.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::format::vmdk {

Result<ScannedStream> scan_stream_markers(const ExtentFile &f, const SparseHeader &h) {
    ScannedStream out;
    const std::uint64_t grain_bytes = h.grain_size * sector_size;
    // The first grain follows the header and descriptor; writers pad up to `overhead` with zeros,
    // which would read as an end-of-stream marker, so start there when it is plausible.
    std::uint64_t first = std::max<std::uint64_t>(1, h.descriptor_offset + h.descriptor_size);
    if (h.overhead >= first && h.overhead <= f.size / sector_size) first = h.overhead;
    std::uint64_t pos = first * sector_size;

    constexpr std::size_t chunk = 1u << 20;
    std::vector<std::byte> buf;
    std::uint64_t buf_start = 0;
    // Makes [at, at + len) available in buf; false at end of file.
    auto load = [&](std::uint64_t at, std::uint64_t len) -> Result<bool> {
        if (at >= buf_start && at + len <= buf_start + buf.size()) return true;
        if (!inside_file(at, len, f.size)) return false;
        const std::uint64_t n = std::min<std::uint64_t>(f.size - at, std::max<std::uint64_t>(chunk, len));
        buf.resize(static_cast<std::size_t>(n));
        buf_start = at;
        HSDK_TRYV(f.file.read_exact(at, buf));
        return true;
    };

    bool ended = false;
    while (true) {
        HSDK_TRY(const bool have, load(pos, 16));
        if (!have) break;
        const Marker m = parse_marker(std::span<const std::byte>(buf).subspan(static_cast<std::size_t>(pos - buf_start)));
        if (m.size != 0) {
            if (m.value % h.grain_size != 0 || m.value >= h.capacity)
                return fail_corrupt(fmt::format("sparse extent '{}': grain marker at offset {:#x} names sector {}, which is not "
                                                "the start of a grain of the disk ({} sectors)",
                                                f.path, pos, m.value, h.capacity));
            if (m.size > 2 * grain_bytes)
                return fail_corrupt(fmt::format("sparse extent '{}': compressed grain at offset {:#x} claims {} bytes", f.path, pos, m.size));
            const std::uint64_t span = (grain_marker_head + m.size + sector_size - 1) / sector_size * sector_size;
            if (!inside_file(pos, grain_marker_head + m.size, f.size)) {
                out.findings.push_back(fmt::format("stream is cut off inside the grain at offset {:#x}", pos));
                break;
            }
            out.grains.emplace_back(m.value / h.grain_size, pos);
            pos += span;
            continue;
        }
        switch (static_cast<MarkerType>(m.type)) {
        case MarkerType::end_of_stream: ended = true; break;
        case MarkerType::grain_table:
        case MarkerType::grain_directory:
        case MarkerType::footer:
            if (m.value > f.size / sector_size)
                return fail_corrupt(fmt::format("sparse extent '{}': marker at offset {:#x} claims {} sectors of metadata", f.path, pos, m.value));
            pos += sector_size + m.value * sector_size;
            continue;
        default:
            return fail_corrupt(fmt::format("sparse extent '{}': unknown marker type {} at offset {:#x}", f.path, m.type, pos));
        }
        break;
    }
    if (!ended && out.findings.empty()) out.findings.push_back("stream ends without an end-of-stream marker");

    std::sort(out.grains.begin(), out.grains.end());
    for (std::size_t i = 1; i < out.grains.size(); ++i)
        if (out.grains[i].first == out.grains[i - 1].first)
            return fail_corrupt(fmt::format("sparse extent '{}': the stream holds grain {} twice (offsets {:#x} and {:#x})", f.path,
                                            out.grains[i].first, out.grains[i - 1].second, out.grains[i].second));
    return out;
}

}  // namespace hypersdk::format::vmdk
