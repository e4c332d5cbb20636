#include "io/output_target.hpp"

#include "io/atomic_output.hpp"
#include "io/file.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {
namespace {

// The target of a symbolic link, relative to the link's folder when it is relative.
Result<std::string> read_link(const std::string &link) {
    std::string buf(PATH_MAX, '\0');
    const ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size());
    if (n < 0) return fail(errno_error(errno, "cannot read the link", link));
    buf.resize(static_cast<std::size_t>(n));
    if (!buf.empty() && buf.front() == '/') return buf;
    const std::string folder = parent_folder(link);
    return link.find('/') == std::string::npos ? buf : (folder == "/" ? "/" + buf : folder + "/" + buf);
}

Result<void> block_geometry(OutputTarget &t) {
    const int fd = ::open(t.resolved.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno_error(errno, "cannot open", t.path));
    std::uint64_t bytes = 0;
    int sector = 512;
    const bool ok = ::ioctl(fd, BLKGETSIZE64, &bytes) == 0;
    const int err = errno;
    if (::ioctl(fd, BLKSSZGET, &sector) != 0 || sector <= 0) sector = 512;
    ::close(fd);
    if (!ok) return fail(errno_error(err, "cannot size the device", t.path));
    t.capacity = bytes;
    t.logical_block = static_cast<std::uint32_t>(sector);
    return success();
}

}  // namespace

Result<OutputTarget> inspect_output(const std::string &path) {
    OutputTarget t;
    t.path = path;
    t.resolved = path;
    for (int hops = 0;; ++hops) {
        struct stat st {};
        if (::lstat(t.resolved.c_str(), &st) != 0) {
            if (errno == ENOENT) {
                t.kind = TargetKind::new_file;
                return t;
            }
            return fail(errno_error(errno, "cannot inspect", path));
        }
        if (S_ISLNK(st.st_mode)) {
            if (hops >= 40) return fail(Errc::invalid_argument, fmt::format("output '{}': too many levels of symbolic links", path));
            HSDK_TRY(t.resolved, read_link(t.resolved));
            continue;
        }
        if (S_ISREG(st.st_mode)) t.kind = TargetKind::regular_file;
        else if (S_ISDIR(st.st_mode)) t.kind = TargetKind::directory;
        else if (S_ISBLK(st.st_mode)) t.kind = TargetKind::block_device;
        else if (S_ISCHR(st.st_mode)) t.kind = TargetKind::char_device;
        else t.kind = TargetKind::fifo_or_socket;
        break;
    }
    if (t.kind == TargetKind::block_device) HSDK_TRYV(block_geometry(t));
    return t;
}

}  // namespace hypersdk::io
