#include "io/file.hpp"

#include "io/write_behind.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {

Error errno_error(int err, std::string_view what, std::string_view path) {
    Errc code = Errc::io_error;
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: code = Errc::no_space; break;
    case EACCES:
    case EPERM:
    case EROFS: code = Errc::permission_denied; break;
    case ENOENT:
    case ENOTDIR: code = Errc::not_found; break;
    case EEXIST: code = Errc::conflict; break;
    case ENOMEM: code = Errc::no_memory; break;
    default: break;
    }
    return Error{code, fmt::format("{} '{}': {}", what, path, std::strerror(err))};
}

File::~File() {
    if (fd_ >= 0) ::close(fd_);
    if (direct_fd_ >= 0) ::close(direct_fd_);
}

File::File(File &&other) noexcept
    : fd_(other.fd_), direct_fd_(other.direct_fd_), write_behind_(other.write_behind_), path_(std::move(other.path_)),
      reservation_(std::move(other.reservation_)),
      in_place_(std::move(other.in_place_)) {
    other.fd_ = -1;
    other.direct_fd_ = -1;
}

File &File::operator=(File &&other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        if (direct_fd_ >= 0) ::close(direct_fd_);
        fd_ = other.fd_;
        direct_fd_ = other.direct_fd_;
        write_behind_ = other.write_behind_;
        path_ = std::move(other.path_);
        reservation_ = std::move(other.reservation_);
        in_place_ = std::move(other.in_place_);
        other.fd_ = -1;
        other.direct_fd_ = -1;
    }
    return *this;
}

bool File::enable_direct_writes() {
    if (direct_fd_ >= 0) return true;
    if (fd_ < 0) return false;
    // Through /proc/self/fd the second descriptor names the very same file even if it was renamed.
    const std::string self = "/proc/self/fd/" + std::to_string(fd_);
    const int d = ::open(self.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
    if (d < 0) return false;
    direct_fd_ = d;
    return true;
}

Result<File> File::open_read(const std::string &path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno_error(errno, "cannot open", path));
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        ::close(fd);
        return fail(Errc::invalid_argument, fmt::format("cannot open '{}': is a directory", path));
    }
    return File(fd, path);
}

Result<File> File::open_read_write(const std::string &path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail(errno_error(errno, "cannot open", path));
    return File(fd, path);
}

Result<File> File::create_new(const std::string &path, unsigned mode) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return fail(errno_error(errno, "cannot create", path));
    File file(fd, path);
    file.reservation_.start_empty();
    return file;
}

Result<File> File::open_in_place(const OutputTarget &target, bool target_is_zero) {
    const int fd = ::open(target.resolved.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return fail(errno_error(errno, "cannot open", target.path));
    File file(fd, target.path);
    file.in_place_ = std::make_unique<InPlaceWrites>(target.kind, target.capacity, target.logical_block, target_is_zero);
    return file;
}

Result<void> File::finish_in_place() {
    if (!in_place_) return success();
    return in_place_->finish(fd_, path_);
}

void File::invalidate_in_place(std::uint64_t bytes) noexcept {
    if (in_place_ && fd_ >= 0) in_place_->invalidate_start(fd_, bytes);
}

Result<std::size_t> File::read_some(std::uint64_t offset, std::span<std::byte> buf) const {
    std::size_t done = 0;
    while (done < buf.size()) {
        const ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(errno_error(errno, "cannot read", path_));
        }
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    return done;
}

Result<void> File::read_exact(std::uint64_t offset, std::span<std::byte> buf) const {
    HSDK_TRY(auto got, read_some(offset, buf));
    if (got != buf.size())
        return fail_corrupt(fmt::format("read of {} bytes at offset {:#x} runs past the end of '{}' ({} bytes short)",
                                        buf.size(), offset, path_, buf.size() - got));
    return success();
}

Result<void> File::write_all(std::uint64_t offset, std::span<const std::byte> buf) {
    if (in_place_) HSDK_TRYV(in_place_->check_capacity(offset + buf.size(), path_));
    constexpr std::uint64_t align = 4096;
    if (direct_fd_ >= 0 && offset % align == 0 && buf.size() % align == 0 && !buf.empty() &&
        reinterpret_cast<std::uintptr_t>(buf.data()) % align == 0) {
        auto r = pwrite_all(direct_fd_, offset, buf);
        if (r || r.error().code != Errc::invalid_argument) return r;
        // The file system took the open but refuses this write: stay buffered from now on.
        ::close(direct_fd_);
        direct_fd_ = -1;
    }
    return pwrite_all(fd_, offset, buf);
}

Result<void> File::write_behind(std::uint64_t offset, std::span<const std::byte> buf) {
    constexpr std::uint64_t align = 4096;
    if (write_behind_ != nullptr && direct_fd_ >= 0 && offset % align == 0 && buf.size() % align == 0 && !buf.empty() &&
        reinterpret_cast<std::uintptr_t>(buf.data()) % align == 0) {
        HSDK_TRYV(reservation_.before_write(fd_, offset, offset + buf.size(), path_));
        reservation_.written(offset, offset + buf.size());
        if (in_place_) {
            HSDK_TRYV(in_place_->check_capacity(offset + buf.size(), path_));
            HSDK_TRYV(in_place_->written(fd_, offset, offset + buf.size(), path_));
        }
        return write_behind_->submit(direct_fd_, offset, buf, &path_);
    }
    return write_all(offset, buf);
}

Result<void> File::pwrite_all(int fd, std::uint64_t offset, std::span<const std::byte> buf) {
    std::size_t done = 0;
    while (done < buf.size()) {
        const ssize_t n = ::pwrite(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EINVAL && fd == direct_fd_) return fail(Errc::invalid_argument, "direct write refused");
            return fail(errno_error(errno, "cannot write", path_));
        }
        done += static_cast<std::size_t>(n);
    }
    reservation_.written(offset, offset + buf.size());
    if (in_place_) HSDK_TRYV(in_place_->written(fd_, offset, offset + buf.size(), path_));
    return success();
}

Result<std::uint64_t> File::size() const {
    if (in_place_) return in_place_->length();  // the image's, not the device's or the old file's
    if (reservation_.active()) return reservation_.apparent_size();  // the reservation is not the file's
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return fail(errno_error(errno, "cannot stat", path_));
    if (S_ISBLK(st.st_mode)) {
        const off_t end = ::lseek(fd_, 0, SEEK_END);
        if (end < 0) return fail(errno_error(errno, "cannot size", path_));
        return static_cast<std::uint64_t>(end);
    }
    return static_cast<std::uint64_t>(st.st_size);
}

Result<std::uint64_t> File::allocated_size() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return fail(errno_error(errno, "cannot stat", path_));
    return static_cast<std::uint64_t>(st.st_blocks) * 512u;
}

Result<void> File::truncate(std::uint64_t length) {
    if (in_place_) return in_place_->set_length(fd_, length, path_);
    if (::ftruncate(fd_, static_cast<off_t>(length)) != 0) return fail(errno_error(errno, "cannot resize", path_));
    reservation_.truncated(length);
    return success();
}

Result<void> File::sync() {
    HSDK_TRYV(reservation_.release(fd_, path_));
    // A character device (/dev/null) has nothing to flush and says so with EINVAL.
    if (::fsync(fd_) != 0 && !(in_place_ && errno == EINVAL)) return fail(errno_error(errno, "cannot flush", path_));
    if (direct_fd_ >= 0 && ::fsync(direct_fd_) != 0 && !(in_place_ && errno == EINVAL))
        return fail(errno_error(errno, "cannot flush", path_));
    return success();
}

Result<void> File::close() {
    auto released = fd_ >= 0 ? reservation_.release(fd_, path_) : success();
    auto closed = close_descriptors();
    return released ? closed : released;
}

Result<void> File::close_descriptors() {
    if (direct_fd_ >= 0) {
        ::close(direct_fd_);
        direct_fd_ = -1;
    }
    if (fd_ < 0) return success();
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return fail(errno_error(errno, "cannot close", path_));
    return success();
}

}  // namespace hypersdk::io
