// What a format driver implements: one layer of a chain (an image file, or a descriptor with its
// extent files), its writer, and its entry in the driver list.
#pragma once

#include <hypersdk/check.hpp>
#include <hypersdk/disk.hpp>

#include "io/atomic_output.hpp"
#include "io/file.hpp"
#include "io/source.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hypersdk::format {

// A reference from one image to another (backing file, parent disk), exactly as written.
struct BackingRef {
    std::string path;    // as written in the image; resolved relative to the image's folder
    std::string format;  // format the image names for it, empty when it doesn't say
};

class Layer {
public:
    virtual ~Layer() = default;
    [[nodiscard]] virtual std::uint64_t virtual_size() const noexcept = 0;
    // Appends runs covering exactly [offset, offset + length) of this layer alone: data, zero, or
    // hole (nothing here: the backing layer shows through). Need not merge neighbours.
    virtual Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) = 0;
    // Reads any range of this layer: data as stored, zero and hole ranges as zeros.
    // Thread-safe, like layer_status.
    virtual Result<void> read(std::uint64_t offset, std::span<std::byte> buf) = 0;
    [[nodiscard]] virtual std::optional<BackingRef> backing() const { return std::nullopt; }
    // Called once the backing chain below this layer is open, for formats that must check a parent
    // (VMDK parentCID, VHD parent UUID, VHDX parent linkage). Receives the parent layer.
    virtual Result<void> verify_parent(const Layer & /*parent*/) { return success(); }
    [[nodiscard]] virtual ImageInfo info() const = 0;
    // Metadata consistency check. The default walks block_status over the whole disk, which makes
    // every driver validate its tables.
    virtual Result<CheckReport> check();
};

// Context a driver gets when opening a file.
struct OpenRequest {
    std::string path;
    io::Source file;  // what the driver reads: a local file, a window of one, a URL, ...
    std::uint64_t file_size = 0;
    const OpenOptions *options = nullptr;
};

// Creating an output image. Files are made through `outputs` so they appear only when complete.
struct CreateRequest {
    std::string path;  // final destination
    std::uint64_t virtual_size = 0;
    FormatOptions options;  // -o key=value pairs; the driver must reject keys it does not know
    bool compress = false;
    io::AtomicOutputSet *outputs = nullptr;
};

// What encode() produced for a run: opaque to the pipeline, interpreted by the writer's commit().
struct EncodedRun {
    std::vector<std::byte> bytes;
    std::vector<std::uint32_t> piece_sizes;  // e.g. compressed size of each grain/cluster in order
};

// Output side of the conversion pipeline.
//
// The pipeline hands over runs whose offset and length are multiples of granularity() (the last
// run is zero-padded past the end of the disk; writers must not grow the disk beyond its size).
// Runs that are entirely zero at that granularity are never handed over: fresh images read as
// zeros there. encode() runs on worker threads concurrently; commit() runs on one thread with
// strictly ascending offsets. The data (and encoded) spans stay valid until the output set is
// drained, so writers may hand them to io::File::write_behind() instead of waiting for each write.
class DiskWriter {
public:
    virtual ~DiskWriter() = default;
    [[nodiscard]] virtual std::uint64_t granularity() const noexcept = 0;
    [[nodiscard]] virtual bool has_encoder() const noexcept { return false; }
    virtual Result<EncodedRun> encode(std::uint64_t offset, std::span<const std::byte> data) const;
    // `encoded` is null unless has_encoder().
    virtual Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *encoded) = 0;
    // Only for outputs with a backing file: ranges that must read as zeros although the backing
    // file holds data there (granularity-aligned, ascending, interleaved with commit()).
    virtual Result<void> commit_zeroes(std::uint64_t offset, std::uint64_t length);
    // Writes the remaining metadata. The caller then commits the AtomicOutputSet.
    virtual Result<void> finish() = 0;
    // The backing image this output will sit on, if any: the pipeline writes only differences.
    [[nodiscard]] virtual std::optional<BackingRef> backing() const { return std::nullopt; }
};

struct Driver {
    std::string_view name;                    // canonical: raw, qcow2, vmdk, vhd, vhdx, vdi
    std::vector<std::string_view> aliases;    // e.g. vpc for vhd
    // Score 0 (not this format) .. 100 from the first bytes of a file (up to 64 KiB) and its size.
    int (*probe)(std::span<const std::byte> head, std::uint64_t file_size) = nullptr;
    Result<std::unique_ptr<Layer>> (*open)(OpenRequest request) = nullptr;
    // nullptr when the format is read-only for us.
    Result<std::unique_ptr<DiskWriter>> (*create)(const CreateRequest &request) = nullptr;
    // Optional second probe from the file's last 512 bytes (a fixed VHD has its only footer there).
    int (*probe_tail)(std::span<const std::byte> tail, std::uint64_t file_size) = nullptr;
};

// Every driver, in one list (format/registry.cpp).
const std::vector<const Driver *> &drivers();
const Driver *find_driver(std::string_view name_or_alias);

// Opens one file or URL as a layer of the given format ("" = probe; raw only when named).
Result<std::unique_ptr<Layer>> open_layer(const std::string &path, const std::string &format, const OpenOptions &options);
// The same for an already open source; its name() names it.
Result<std::unique_ptr<Layer>> open_layer_source(io::Source source, const std::string &format, const OpenOptions &options);

// Options helper for drivers: takes key's value out of `options` (last one wins), or nullopt.
std::optional<std::string> take_option(FormatOptions &options, std::string_view key);
// Fails with invalid_argument naming the first option nobody took.
Result<void> reject_unknown_options(const FormatOptions &options, std::string_view format);
Result<std::uint64_t> parse_size_option(std::string_view key, std::string_view value);
Result<bool> parse_bool_option(std::string_view key, std::string_view value);

// Helper for layer_status implementations: append, merging with the previous run when possible.
void append_extent(std::vector<Extent> &out, const Extent &e);

}  // namespace hypersdk::format
