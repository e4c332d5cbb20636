// The disk a warm migration writes into, updated in place round after round: a sparse raw file,
// or a qcow2 with every cluster mapped up front (format/qcow2/preallocated.hpp). Both take any
// guest range at any time with one pwrite; ranges that became zero are punched out again.
#pragma once

#include "io/file.hpp"

#include <hypersdk/error.hpp>

#include <cstdint>
#include <span>
#include <string>

namespace hypersdk::exporter {

class WarmTarget {
public:
    // Creates `path` (it must not exist) for a disk of `capacity` bytes.
    static Result<WarmTarget> create(const std::string &path, const std::string &format, std::uint64_t capacity);
    // Opens a target an earlier step created, checking it is one and has this capacity.
    static Result<WarmTarget> open(const std::string &path, const std::string &format, std::uint64_t capacity);

    // Guest bytes at `offset`: written, or punched out when they are all zero.
    Result<void> write(std::uint64_t offset, std::span<const std::byte> data);
    // Guest range [offset, offset + length) reads as zeros afterwards.
    Result<void> zero(std::uint64_t offset, std::uint64_t length);
    Result<void> sync() { return file_.sync(); }
    Result<void> close() { return file_.close(); }
    [[nodiscard]] std::uint64_t capacity() const noexcept { return capacity_; }

    // The formats a warm target can have.
    static bool supported(const std::string &format) { return format == "qcow2" || format == "raw"; }

private:
    WarmTarget(io::File file, std::uint64_t base, std::uint64_t capacity) : file_(std::move(file)), base_(base), capacity_(capacity) {}
    io::File file_;
    std::uint64_t base_ = 0;  // host offset of guest offset 0
    std::uint64_t capacity_ = 0;
};

}  // namespace hypersdk::exporter
