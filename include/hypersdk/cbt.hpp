// Changed-block tracking: the changed byte ranges of a disk between two points in time, from any
// source (vSphere CBT, EBS ListChangedBlocks, Azure page-range diffs, or a local comparison of two
// images), and the qcow2 overlays ("deltas") they become: each holds only the changed data and
// names the previous link of its chain as its backing file, so QEMU, qemu-img and libvirt read
// the whole disk at that point.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/disk.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/progress.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace hypersdk {

struct ChangedRun {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    [[nodiscard]] std::uint64_t end() const noexcept { return offset + length; }
    friend bool operator==(const ChangedRun &, const ChangedRun &) = default;
};

// Sorted, merged, non-empty runs: adding overlapping or touching runs merges them.
class ChangedExtents {
public:
    ChangedExtents() = default;
    // From runs in any order, overlapping or not; empty runs are dropped.
    static ChangedExtents from_runs(std::vector<ChangedRun> runs);

    // Adds [offset, offset + length); cheap when runs arrive in ascending order.
    void add(std::uint64_t offset, std::uint64_t length);
    [[nodiscard]] const std::vector<ChangedRun> &runs() const noexcept { return runs_; }
    [[nodiscard]] bool empty() const noexcept { return runs_.empty(); }
    [[nodiscard]] std::uint64_t bytes() const noexcept;  // bytes covered
    [[nodiscard]] bool covers(std::uint64_t offset) const noexcept;

    [[nodiscard]] ChangedExtents united(const ChangedExtents &other) const;
    [[nodiscard]] ChangedExtents intersected(const ChangedExtents &other) const;
    // Only what lies in [begin, end).
    [[nodiscard]] ChangedExtents clipped(std::uint64_t begin, std::uint64_t end) const;
    // Every run widened to `granule` boundaries (a power of two or any positive size), then
    // clipped to [0, limit).
    [[nodiscard]] ChangedExtents aligned(std::uint64_t granule, std::uint64_t limit) const;

    friend bool operator==(const ChangedExtents &, const ChangedExtents &) = default;

private:
    void normalize();
    std::vector<ChangedRun> runs_;
};

struct DiffOptions {
    std::uint64_t block_size = 64 * 1024;  // compared in blocks of this size (a multiple of 512)
    unsigned threads = 0;                  // 0: one per core
    ProgressCallback progress;
    CancelToken cancel;
};

// The blocks where `next` differs from `base` (the local diff, for sources without changed-block
// tracking): both read block by block in parallel, ranges that are holes in both skipped. The
// images must have the same virtual size (invalid_argument otherwise).
Result<ChangedExtents> diff_images(BlockDevice &base, BlockDevice &next, const DiffOptions &options = {});

struct DeltaOptions {
    // The overlay's backing file as it is written into it: the previous link of the chain, named
    // relative to the overlay's folder (or absolute), and its format.
    std::string backing_file;
    std::string backing_format;
    FormatOptions format_options;  // qcow2 options (cluster_size, ...)
    unsigned threads = 0;
    bool overwrite = false;
    // Read the backing file so that changed extents whose data it already holds are left out.
    // Off: the backing file is only named (an encrypted previous link), and every extent is written.
    bool read_backing = true;
    ProgressCallback progress;
    CancelToken cancel;
};

struct DeltaStats {
    std::uint64_t virtual_size = 0;
    std::uint64_t changed_bytes = 0;  // bytes the extents cover
    std::uint64_t bytes_read = 0;     // read from the source (the extents, widened to clusters)
    std::uint64_t bytes_written = 0;  // data that differed from the backing and was written
    std::uint64_t output_size = 0;    // the overlay file's size
    double seconds = 0;
};

// Writes `destination` (atomically: nothing there on failure) as a qcow2 overlay on
// options.backing_file holding `source`'s bytes within `changed` wherever they differ from the
// backing chain: data as data clusters, zeros over backing data as zero clusters. Everything
// outside `changed` reads from the backing file. `source` must have the backing's virtual size.
Result<DeltaStats> write_delta(BlockDevice &source, const ChangedExtents &changed, const std::string &destination,
                               const DeltaOptions &options);

}  // namespace hypersdk
