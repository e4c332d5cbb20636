// Space reserved ahead of a file's direct writes.
//
// On ext4 a direct write that allocates blocks (into a hole, or past the end of the file) holds the
// inode lock until the device completes it, so such writes reach the disk one at a time; under CPU
// load the disk then idles between them (measured: 1.2 GB/s appending against 1.9 GB/s into
// reserved space, 4 writers, both cores busy). Writes into space reserved with fallocate are
// overwrites of unwritten extents and go in parallel.
//
// The reservation is a window that moves with the writes (which mostly ascend). Parts of a window
// that no write covered are punched out again when the window moves on and at release(), and space
// reserved past the file's end is cut off, so the file ends up exactly as sparse and as long as
// without the reservation. Reserving is an optimisation only: where fallocate or hole punching is
// refused, it stops and the writes go ahead as they would have.
#pragma once

#include <hypersdk/error.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hypersdk::io {

class SpaceReservation {
public:
    // Starts keeping track of a file just created empty: only a file whose every write went
    // through here can tell a gap from data. Until then, nothing is reserved.
    void start_empty() noexcept { started_ = true; }
    // Before a queued direct write of [offset, end) on `fd`: reserves a new window when the write
    // falls outside the current one.
    Result<void> before_write(int fd, std::uint64_t offset, std::uint64_t end, const std::string &path);
    // After any write of [offset, end) (queued or not).
    void written(std::uint64_t offset, std::uint64_t end);
    // After ftruncate(length).
    void truncated(std::uint64_t length);
    // Punches the unwritten parts of the window and cuts the file back to its apparent size.
    Result<void> release(int fd, const std::string &path);

    [[nodiscard]] bool active() const noexcept { return started_ && !stopped_; }
    // The file's size without the reservation (valid while active()).
    [[nodiscard]] std::uint64_t apparent_size() const noexcept { return apparent_size_; }

private:
    Result<void> close_window(int fd, const std::string &path);
    void stop() noexcept { stopped_ = true; }

    bool started_ = false;
    bool stopped_ = false;
    std::uint64_t apparent_size_ = 0;
    std::uint64_t written_total_ = 0;
    std::uint64_t written_end_ = 0;  // end of the highest write so far
    std::uint64_t begin_ = 0, end_ = 0;  // the window; empty when begin_ == end_
    std::vector<std::pair<std::uint64_t, std::uint64_t>> covered_;  // written parts of the window, merged
};

}  // namespace hypersdk::io
