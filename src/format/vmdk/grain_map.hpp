// The two-level grain map shared by every sparse VMDK extent (hosted KDMV, COWD, seSparse): a grain
// directory held in memory, grain tables loaded on demand into a bounded cache, and the grains
// themselves (plain, or deflate-compressed behind stream markers).
#pragma once

#include "format/vmdk/extent.hpp"

#include <functional>
#include <mutex>
#include <unordered_map>

namespace hypersdk::format::vmdk {

// Decoded grain table values: a hole (the parent shows through), zeros, or the byte offset of the
// grain in the extent file (always >= 512, so never confused with the two sentinels).
inline constexpr std::uint64_t grain_hole = 0;
inline constexpr std::uint64_t grain_zero = 1;

// Decoded grain directory values: no table (all holes), a table of zeros, or the table's byte offset.
inline constexpr std::uint64_t table_none = 0;
inline constexpr std::uint64_t table_zero = 1;

struct FileRange {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::string what;
    bool grain = false;  // a data grain (two grains at one offset are a shared grain, not an overlap)
};

struct GrainMapConfig {
    std::string what;    // "sparse extent", "COWD extent", ... for messages, with the file name added
    std::string format;  // summary format name
    std::uint64_t capacity = 0;  // bytes the tables describe
    std::uint64_t grain = 0;     // bytes per grain
    std::uint32_t gtes_per_gt = 0;
    unsigned entry_bytes = 4;  // 4 (hosted, COWD) or 8 (seSparse)
    std::vector<std::uint64_t> directory;  // decoded grain directory
    // Raw grain table entry -> grain_hole / grain_zero / byte offset; fails for malformed entries.
    std::function<Result<std::uint64_t>(std::uint64_t raw)> decode;
    bool compressed = false;
    bool markers = false;
    // streamOptimized stream without a usable directory: grain index -> byte offset of its marker,
    // sorted by grain, rebuilt by scanning the markers.
    bool scanned = false;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> scanned_grains;
    std::vector<FileRange> metadata;      // header, descriptor, directories: must not overlap grains
    std::vector<std::string> findings;    // inconsistencies found at open, reported by check()
    bool dirty = false;
    nlohmann::json extra = nlohmann::json::object();
};

class GrainMapExtent final : public ExtentReader {
public:
    // Refuses directories whose tables coincide or overlap: no writer produces them, and they would
    // let a small file describe a huge number of grains.
    static Result<std::unique_ptr<ExtentReader>> create(std::shared_ptr<ExtentFile> file, GrainMapConfig config);
    GrainMapExtent(std::shared_ptr<ExtentFile> file, GrainMapConfig config);

    std::uint64_t capacity() const noexcept override { return cfg_.capacity; }
    Result<void> status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override;
    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override;
    void check(std::uint64_t used, CheckSink &sink) override;
    ExtentSummary summary() const override;
    bool dirty() const noexcept override { return cfg_.dirty; }

private:
    using Table = std::vector<std::uint64_t>;
    Result<std::shared_ptr<const Table>> table(std::uint64_t index);
    Result<std::shared_ptr<const Table>> load_table(std::uint64_t index) const;
    // Decoded value of one grain.
    Result<std::uint64_t> grain_value(std::uint64_t grain, std::shared_ptr<const Table> &cached, std::uint64_t &cached_index);
    // Bytes of grain `g` that lie inside the capacity.
    [[nodiscard]] std::uint64_t grain_bytes(std::uint64_t g) const noexcept;
    [[nodiscard]] std::string where() const;

    struct Window;  // read-ahead buffer for compressed grains
    Result<void> read_compressed(std::uint64_t g, std::uint64_t at, std::uint64_t in_grain, std::span<std::byte> out,
                                 std::uint64_t remaining, Window &window, std::vector<std::byte> &scratch);

    std::shared_ptr<ExtentFile> file_;
    GrainMapConfig cfg_;
    std::mutex mutex_;
    std::unordered_map<std::uint64_t, std::shared_ptr<const Table>> cache_;
    std::size_t cached_bytes_ = 0;
};

}  // namespace hypersdk::format::vmdk
