#include "io/in_place.hpp"

#include "io/file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace hypersdk::io {

Result<void> InPlaceWrites::check_capacity(std::uint64_t end, const std::string &path) const {
    if (kind_ == TargetKind::block_device && end > capacity_)
        return fail(Errc::no_space, fmt::format("device '{}' holds {} bytes; the image needs at least {}", path, capacity_, end));
    return success();
}

Result<void> InPlaceWrites::written(int fd, std::uint64_t offset, std::uint64_t end, const std::string &path) {
    if (end <= offset) return success();
    std::unique_lock lock(mutex_);
    length_ = std::max(length_, end);
    if (kind_ == TargetKind::char_device || target_is_zero_) return success();
    // Merge with every range it touches or adjoins.
    auto it = ranges_.upper_bound(offset);
    if (it != ranges_.begin() && std::prev(it)->second >= offset) --it;
    while (it != ranges_.end() && it->first <= end) {
        offset = std::min(offset, it->first);
        end = std::max(end, it->second);
        it = ranges_.erase(it);
    }
    ranges_.emplace(offset, end);
    if (ranges_.size() <= max_ranges) return success();
    const std::uint64_t top = std::prev(ranges_.end())->second;
    return zero_gaps_below(fd, top, path);
}

Result<void> InPlaceWrites::set_length(int fd, std::uint64_t length, const std::string &path) {
    HSDK_TRYV(check_capacity(length, path));
    std::unique_lock lock(mutex_);
    if (kind_ == TargetKind::regular_file) {
        // Written as it is, like qemu-img convert -n: neither grown nor cut.
        struct stat st {};
        if (::fstat(fd, &st) != 0) return fail(errno_error(errno, "cannot stat", path));
        if (static_cast<std::uint64_t>(st.st_size) < length)
            return fail(Errc::no_space, fmt::format("output '{}' holds {} bytes, fewer than the image's {} (it is written into "
                                                    "as it is)",
                                                    path, st.st_size, length));
    }
    length_ = std::max(length_, length);
    return success();
}

std::uint64_t InPlaceWrites::length() const {
    std::unique_lock lock(mutex_);
    return length_;
}

Result<void> InPlaceWrites::finish(int fd, const std::string &path) {
    std::unique_lock lock(mutex_);
    if (kind_ == TargetKind::char_device || target_is_zero_) return success();
    return zero_gaps_below(fd, length_, path);
}

Result<void> InPlaceWrites::zero_gaps_below(int fd, std::uint64_t end, const std::string &path) {
    std::uint64_t pos = 0;
    for (const auto &[b, e] : ranges_) {
        if (b >= end) break;
        if (b > pos) HSDK_TRYV(zero(fd, pos, b - pos, path));
        pos = std::max(pos, e);
    }
    if (pos < end) HSDK_TRYV(zero(fd, pos, end - pos, path));
    ranges_.clear();
    ranges_.emplace(0, std::max(end, pos));
    return success();
}

Result<void> InPlaceWrites::zero(int fd, std::uint64_t offset, std::uint64_t length, const std::string &path) const {
    if (length == 0) return success();
    if (kind_ == TargetKind::block_device) {
        // The device zeroes whole logical blocks itself; the unaligned edges are written.
        const std::uint64_t b = block_;
        const std::uint64_t first = (offset + b - 1) / b * b, last = (offset + length) / b * b;
        if (first < last) {
            std::uint64_t range[2] = {first, last - first};
            if (::ioctl(fd, BLKZEROOUT, range) == 0) {
                HSDK_TRYV(write_zeros(fd, offset, first - offset, path));
                return write_zeros(fd, last, offset + length - last, path);
            }
        }
        return write_zeros(fd, offset, length, path);
    }
    // A file: a hole reads as zeros and costs nothing.
    if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
        return success();
    return write_zeros(fd, offset, length, path);
}

Result<void> InPlaceWrites::write_zeros(int fd, std::uint64_t offset, std::uint64_t length, const std::string &path) const {
    static const std::vector<char> zeros(1 << 20, 0);
    while (length > 0) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(length, zeros.size()));
        const ssize_t w = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(offset));
        if (w < 0) {
            if (errno == EINTR) continue;
            return fail(errno_error(errno, "cannot write zeros to", path));
        }
        offset += static_cast<std::uint64_t>(w);
        length -= static_cast<std::uint64_t>(w);
    }
    return success();
}

void InPlaceWrites::invalidate_start(int fd, std::uint64_t bytes) noexcept {
    if (kind_ == TargetKind::char_device) return;
    std::unique_lock lock(mutex_);
    const std::uint64_t n = std::min(bytes, length_);
    if (n == 0) return;
    (void)zero(fd, 0, n, "");
    (void)::fdatasync(fd);
}

}  // namespace hypersdk::io
