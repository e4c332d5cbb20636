// Writing an image in place: into a block device, a character device, or an existing file (-n).
//
// A new file reads as zeros wherever nothing was written; a device or an old file holds whatever
// was there before. So every write is recorded, and finish() zeroes each range of [0, end) that no
// write covered (BLKZEROOUT on a device, hole punching in a file, plain zero writes where neither is
// offered), unless the caller vouched that the target already reads as zeros. The image then reads
// exactly as the same output written to a new file would, and whatever lies past its end is left
// alone (as qemu-img convert -n leaves it).
//
// The record stays small: once it holds many separate ranges, the gaps below the highest write are
// zeroed at once and the record collapses to one range. Zeroing a gap that a later write covers
// again costs a little work and is still correct.
#pragma once

#include <hypersdk/error.hpp>

#include "io/output_target.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace hypersdk::io {

class InPlaceWrites {
public:
    InPlaceWrites(TargetKind kind, std::uint64_t capacity, std::uint32_t logical_block, bool target_is_zero)
        : kind_(kind), capacity_(capacity), block_(logical_block ? logical_block : 512), target_is_zero_(target_is_zero) {}

    // Before writing [offset, end): a block device must hold it.
    Result<void> check_capacity(std::uint64_t end, const std::string &path) const;
    // After a write of [offset, end) was issued on `fd`.
    Result<void> written(int fd, std::uint64_t offset, std::uint64_t end, const std::string &path);
    // The writer sets the image's length: a device must hold it; a file grows to it (never shrinks).
    Result<void> set_length(int fd, std::uint64_t length, const std::string &path);
    // The image's length so far: its highest write or the length set.
    [[nodiscard]] std::uint64_t length() const;
    // Zeroes every gap of [0, length()).
    Result<void> finish(int fd, const std::string &path);
    // Zeroes [0, bytes) (capped at the length written): the header of a failed image, so the
    // partial image is not taken for a whole one.
    void invalidate_start(int fd, std::uint64_t bytes) noexcept;

private:
    Result<void> zero_gaps_below(int fd, std::uint64_t end, const std::string &path);
    Result<void> zero(int fd, std::uint64_t offset, std::uint64_t length, const std::string &path) const;
    Result<void> write_zeros(int fd, std::uint64_t offset, std::uint64_t length, const std::string &path) const;

    static constexpr std::size_t max_ranges = 1 << 16;

    const TargetKind kind_;
    const std::uint64_t capacity_;
    const std::uint32_t block_;
    const bool target_is_zero_;
    mutable std::mutex mutex_;
    std::map<std::uint64_t, std::uint64_t> ranges_;  // begin -> end, merged, disjoint
    std::uint64_t length_ = 0;
};

}  // namespace hypersdk::io
