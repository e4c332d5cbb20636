#include "format/host_holes.hpp"

namespace hypersdk::format {

Result<void> append_split_by_host_holes(const io::Source &file, const Extent &e, std::vector<Extent> &out) {
    HSDK_TRY(auto runs, file.allocation(e.host_offset, e.length));
    std::uint64_t pos = e.host_offset;
    auto append = [&](std::uint64_t from, std::uint64_t to, ExtentKind kind) {
        Extent part{e.offset + (from - e.host_offset), to - from, kind, e.depth,
                    kind == ExtentKind::data ? from : no_host_offset};
        append_extent(out, part);
    };
    for (const auto &r : runs) {
        if (r.offset != pos) break;
        append(r.offset, r.offset + r.length, r.data ? ExtentKind::data : ExtentKind::zero);
        pos += r.length;
    }
    // Past the end of the file (a corrupt table): left as data so that reading it reports the error.
    if (pos < e.host_offset + e.length) append(pos, e.host_offset + e.length, ExtentKind::data);
    return success();
}

}  // namespace hypersdk::format
