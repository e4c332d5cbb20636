#include "format/host_holes.hpp"

#include <algorithm>
#include <cerrno>
#include <unistd.h>

namespace hypersdk::format {

Result<void> append_split_by_host_holes(const io::File &file, const Extent &e, std::vector<Extent> &out) {
    const std::uint64_t host_end = e.host_offset + e.length;
    std::uint64_t pos = e.host_offset;
    auto append = [&](std::uint64_t from, std::uint64_t to, ExtentKind kind) {
        Extent part{e.offset + (from - e.host_offset), to - from, kind, e.depth,
                    kind == ExtentKind::data ? from : no_host_offset};
        append_extent(out, part);
    };
    while (pos < host_end) {
        // lseek moves the shared file offset, which nothing else uses: all reads are positional.
        const off_t data = ::lseek(file.fd(), static_cast<off_t>(pos), SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) {  // only a hole after pos
                append(pos, host_end, ExtentKind::zero);
                return success();
            }
            if (errno == EINVAL || errno == ENOTSUP) {  // no SEEK_DATA here
                append(pos, host_end, ExtentKind::data);
                return success();
            }
            return fail(io::errno_error(errno, "cannot map", file.path()));
        }
        const std::uint64_t data_start = std::min<std::uint64_t>(static_cast<std::uint64_t>(data), host_end);
        if (data_start > pos) append(pos, data_start, ExtentKind::zero);
        if (data_start >= host_end) break;
        const off_t hole = ::lseek(file.fd(), static_cast<off_t>(data_start), SEEK_HOLE);
        if (hole < 0) return fail(io::errno_error(errno, "cannot map", file.path()));
        const std::uint64_t data_end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), host_end);
        append(data_start, data_end, ExtentKind::data);
        pos = data_end;
    }
    return success();
}

}  // namespace hypersdk::format
