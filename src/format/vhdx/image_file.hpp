// The VHDX file as the reader sees it: the bytes on disk, patched in memory by a replayed log.
// The source file itself is never written.
#pragma once

#include "io/source.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace hypersdk::format::vhdx {

// Replayed log writes: non-overlapping runs of file bytes (data or zeros), later writes win.
class Overlay {
public:
    void write(std::uint64_t offset, std::vector<std::byte> data);
    void zero(std::uint64_t offset, std::uint64_t length);
    [[nodiscard]] bool empty() const noexcept { return runs_.empty(); }
    [[nodiscard]] bool touches(std::uint64_t offset, std::uint64_t length) const;
    // Replaces the parts of `buf` (file bytes at `offset`) that the overlay covers.
    void patch(std::uint64_t offset, std::span<std::byte> buf) const;

private:
    struct Run {
        std::uint64_t end = 0;
        std::vector<std::byte> data;  // empty: the run reads as zeros
    };
    // Cuts existing runs so that nothing overlaps [begin, end).
    void carve(std::uint64_t begin, std::uint64_t end);
    std::map<std::uint64_t, Run> runs_;
};

class ImageFile {
public:
    ImageFile(io::Source file, std::uint64_t physical_size)
        : file_(std::move(file)), physical_size_(physical_size), logical_size_(physical_size) {}

    // Installs the replayed log; the file then reads as `logical_size` bytes (the log may extend it,
    // the extension reading as zeros where the log wrote nothing).
    void set_overlay(Overlay overlay, std::uint64_t logical_size) {
        overlay_ = std::move(overlay);
        logical_size_ = std::max(logical_size, physical_size_);
    }

    [[nodiscard]] std::uint64_t size() const noexcept { return logical_size_; }
    [[nodiscard]] std::uint64_t physical_size() const noexcept { return physical_size_; }
    [[nodiscard]] const io::Source &file() const noexcept { return file_; }
    [[nodiscard]] bool replayed() const noexcept { return !overlay_.empty() || logical_size_ != physical_size_; }
    // Whether [offset, offset+length) reads anything but the file's own bytes.
    [[nodiscard]] bool patched(std::uint64_t offset, std::uint64_t length) const {
        return overlay_.touches(offset, length) || offset + length > physical_size_;
    }

    // Reads exactly buf.size() bytes; reading past the (logical) end is corrupt_image.
    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) const;

private:
    io::Source file_;
    std::uint64_t physical_size_;
    std::uint64_t logical_size_;
    Overlay overlay_;
};

}  // namespace hypersdk::format::vhdx
