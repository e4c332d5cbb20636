#include "io/space_reservation.hpp"

#include "io/file.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

namespace hypersdk::io {
namespace {

constexpr std::uint64_t min_step = 64ULL << 20;
constexpr std::uint64_t max_step = 512ULL << 20;

}  // namespace

Result<void> SpaceReservation::before_write(int fd, std::uint64_t offset, std::uint64_t end, const std::string &path) {
    if (!active()) return success();
    if (offset >= begin_ && end <= end_) return success();
    // A window only ever covers space past everything written so far: what it does not see written
    // must be a gap, never data of an earlier window. A write back below that line goes unreserved.
    if (end <= written_end_) return success();
    HSDK_TRYV(close_window(fd, path));
    if (stopped_) return success();
    // Reserving waits for the writes in flight (the file system drains them first), so reserve in
    // steps that grow with what has been written: an eighth of it, 64 MiB to 512 MiB.
    const std::uint64_t step = std::clamp(written_total_ / 8, min_step, max_step);
    const std::uint64_t from = std::max(offset / 4096 * 4096, written_end_);
    std::uint64_t to = (end + step + min_step - 1) / min_step * min_step;
    if (end <= apparent_size_) to = std::max(end, std::min(to, apparent_size_));  // a sized file: stay inside it
    if (::fallocate(fd, 0, static_cast<off_t>(from), static_cast<off_t>(to - from)) != 0) {
        // EOPNOTSUPP, or not that much room (ENOSPC): write without reserving; a real lack of space
        // then shows on the write itself. Cut off whatever part was reserved past the end.
        stop();
        if (::ftruncate(fd, static_cast<off_t>(apparent_size_)) != 0) return fail(errno_error(errno, "cannot resize", path));
        return success();
    }
    begin_ = from;
    end_ = to;
    covered_.clear();
    return success();
}

void SpaceReservation::written(std::uint64_t offset, std::uint64_t end) {
    if (!active() || end <= offset) return;
    apparent_size_ = std::max(apparent_size_, end);
    written_end_ = std::max(written_end_, end);
    written_total_ += end - offset;
    const std::uint64_t b = std::max(offset, begin_), e = std::min(end, end_);
    if (b >= e) return;
    // Writes mostly ascend: merge into the last range, or insert in order.
    if (!covered_.empty() && b >= covered_.back().first) {
        if (b <= covered_.back().second) {
            covered_.back().second = std::max(covered_.back().second, e);
            return;
        }
        covered_.emplace_back(b, e);
        return;
    }
    covered_.emplace_back(b, e);
    std::sort(covered_.begin(), covered_.end());
    std::vector<std::pair<std::uint64_t, std::uint64_t>> merged;
    for (const auto &r : covered_) {
        if (!merged.empty() && r.first <= merged.back().second)
            merged.back().second = std::max(merged.back().second, r.second);
        else
            merged.push_back(r);
    }
    covered_ = std::move(merged);
}

void SpaceReservation::truncated(std::uint64_t length) {
    if (!active()) return;
    apparent_size_ = length;
    written_end_ = std::min(written_end_, length);
    end_ = std::min(end_, length);
    begin_ = std::min(begin_, end_);
    for (auto &r : covered_) r.second = std::min(r.second, length);
}

Result<void> SpaceReservation::close_window(int fd, const std::string &path) {
    if (begin_ == end_) return success();
    // Only the part inside the file needs punching; what lies past its end is cut off below.
    const std::uint64_t stop_at = std::min(end_, apparent_size_);
    std::uint64_t pos = begin_;
    auto punch = [&](std::uint64_t a, std::uint64_t b) -> Result<void> {
        if (b <= a) return success();
        if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(a), static_cast<off_t>(b - a)) != 0)
            return fail(errno_error(errno, "cannot release reserved space in", path));
        return success();
    };
    for (const auto &[b, e] : covered_) {
        if (b >= stop_at) break;
        HSDK_TRYV(punch(pos, b));
        pos = std::max(pos, e);
    }
    HSDK_TRYV(punch(pos, stop_at));
    // A window past the end made the file longer (fallocate mode 0): cut that off.
    if (end_ > apparent_size_ && ::ftruncate(fd, static_cast<off_t>(apparent_size_)) != 0)
        return fail(errno_error(errno, "cannot resize", path));
    begin_ = end_ = 0;
    covered_.clear();
    return success();
}

Result<void> SpaceReservation::release(int fd, const std::string &path) {
    if (!active()) return success();
    return close_window(fd, path);
}

}  // namespace hypersdk::io
