// Converting, comparing, checking and mapping disk images.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/check.hpp>
#include <hypersdk/disk.hpp>
#include <hypersdk/progress.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hypersdk {

struct ConvertOptions {
    std::string output_format;  // raw, qcow2, vmdk, vhd (vpc), vhdx, vdi
    FormatOptions format_options;
    bool compress = false;     // -c: compress where the format can (qcow2, vmdk streamOptimized)
    // With a backing file (-B): read it, so that data equal to the backing's is not written again.
    // Off: the backing file is only named in the output, never opened (an encrypted previous link
    // of a backup chain), and all the data is written.
    bool read_backing = true;
    unsigned threads = 0;      // 0: one per core
    // Reads of the source kept in flight ahead of the conversion, for a source behind a URL or a
    // cloud API where each read waits a round trip: the data ranges are fetched in order, the
    // window growing from 4 up to this many while the conversion waits for them. 0 or 1: the
    // workers read the source themselves (local files). convert() by location picks 16 for a
    // remote one when this is 0.
    unsigned requests_in_flight = 0;
    bool overwrite = true;     // replace an existing destination (atomically)
    // Write aligned data with O_DIRECT, bypassing the page cache (qemu-img's -t none); off = through
    // the page cache (-t writeback).
    bool direct_io = true;
    // fsync the output and its folder around the rename into place. Off (with direct_io off) is
    // qemu-img convert's default cache mode, "unsafe": faster, but the data may still be only in the
    // page cache when convert() returns, and a crash can leave a complete-looking file with holes.
    bool flush = true;
    // qemu-img convert -n: write into the existing destination (a raw file or a device) as it is,
    // without creating it; a device is always written in place, with or without this.
    bool skip_create = false;
    // --target-is-zero: a destination written in place already reads as zeros, so the ranges no
    // data lands on are not zeroed.
    bool target_is_zero = false;
    // -S: only zero runs of at least this many bytes become holes; 0 writes every byte (a fully
    // allocated output). Unset: the output format's granularity.
    std::optional<std::uint64_t> sparse_size;
    ProgressCallback progress;
    CancelToken cancel;
};

struct ConvertStats {
    std::uint64_t virtual_size = 0;
    std::uint64_t bytes_read = 0;     // data read from the source
    std::uint64_t bytes_written = 0;  // payload handed to the writer (after zero elimination)
    std::uint64_t output_size = 0;    // sum of the output files' sizes
    double seconds = 0;
};

// Sets direct_io and flush from a qemu-img cache mode name: "none" (the default: O_DIRECT for aligned
// data, fsync), "writeback" (page cache, fsync) or "unsafe" (page cache, no fsync). Other names fail
// with invalid_argument.
Result<void> set_cache_mode(ConvertOptions &options, std::string_view mode);

// Writes `source` to `destination` (under a temporary name, renamed when complete and flushed).
Result<ConvertStats> convert(BlockDevice &source, const std::string &destination, const ConvertOptions &options);
Result<ConvertStats> convert(const std::string &source, const OpenOptions &source_options,
                             const std::string &destination, const ConvertOptions &options);

struct CompareResult {
    bool identical = false;
    std::uint64_t first_difference = 0;  // valid when !identical
    std::string reason;                  // "content differs", "size differs", ...
};

struct CompareOptions {
    bool strict = false;  // sizes must match and allocation must match (qemu-img compare -s)
    ProgressCallback progress;
    CancelToken cancel;
};

// Sizes may differ: the common part must match and the rest of the larger image must read as zeros
// (qemu-img compare semantics), unless strict.
Result<CompareResult> compare(BlockDevice &a, BlockDevice &b, const CompareOptions &options = {});

// Checks an image's metadata for consistency (refcounts for qcow2, table bounds and overlaps,
// checksums). Never modifies the image.
Result<CheckReport> check_image(const std::string &path, const OpenOptions &options = {});

}  // namespace hypersdk
