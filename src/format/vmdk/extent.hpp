// One extent of a VMDK disk, in its own coordinates (byte 0 = the extent's first sector). The layer
// concatenates extents into the virtual disk. Implementations: flat (raw file), zero, hosted sparse
// (KDMV, including streamOptimized), ESX sparse (COWD) and seSparse.
#pragma once

#include <hypersdk/check.hpp>
#include <hypersdk/disk.hpp>

#include "io/source.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hypersdk::format::vmdk {

// A file shared by the extents that live in it (a monolithic sparse file is both descriptor and
// extent; VMFS descriptors may cut several extents out of one file).
struct ExtentFile {
    io::Source file;
    std::uint64_t size = 0;
    std::string path;
};

// Collects check() findings; keeps the message list bounded.
class CheckSink {
public:
    explicit CheckSink(CheckReport &report) : report_(report) {}
    void error(std::string message);
    [[nodiscard]] CheckReport &report() noexcept { return report_; }

private:
    CheckReport &report_;
};

struct ExtentSummary {
    std::string format;  // qemu's per-extent "format": SPARSE, FLAT, VMFSSPARSE, ... ("" for monolithic)
    std::optional<std::uint64_t> cluster_size;
    bool compressed = false;
    nlohmann::json extra = nlohmann::json::object();  // driver-specific details for info
};

class ExtentReader {
public:
    virtual ~ExtentReader() = default;
    // Bytes this extent can serve (its own capacity; the descriptor may use fewer).
    [[nodiscard]] virtual std::uint64_t capacity() const noexcept = 0;
    // Runs covering [offset, offset + length) in extent coordinates; host_offset is the byte offset in
    // the extent file for plain data, no_host_offset otherwise.
    virtual Result<void> status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) = 0;
    // Reads a range; holes and zero runs read as zeros. Thread-safe.
    virtual Result<void> read(std::uint64_t offset, std::span<std::byte> buf) = 0;
    // Metadata consistency check over the first `used` bytes.
    virtual void check(std::uint64_t used, CheckSink &sink) = 0;
    [[nodiscard]] virtual ExtentSummary summary() const = 0;
    [[nodiscard]] virtual bool dirty() const noexcept { return false; }
};

// Shared helpers for run lists.
void push_run(std::vector<Extent> &out, std::uint64_t offset, std::uint64_t length, ExtentKind kind,
              std::uint64_t host_offset = no_host_offset);

}  // namespace hypersdk::format::vmdk
