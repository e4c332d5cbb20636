// What an output path names: a new file, an existing regular file, a block or character device, a
// FIFO or socket, a folder. Symbolic links are followed (a link to a device is the device; a link to
// a file is replaced through, keeping the link), so no output ever replaces a device node or a link
// with a regular file.
#pragma once

#include <hypersdk/error.hpp>

#include <cstdint>
#include <string>

namespace hypersdk::io {

enum class TargetKind {
    new_file,       // nothing there yet
    regular_file,   // an existing file
    block_device,   // written in place; its capacity bounds the image
    char_device,    // written in place (/dev/null, /dev/full); no capacity, no zeroing
    fifo_or_socket, // no random access: refused
    directory,
};

struct OutputTarget {
    std::string path;          // as given
    std::string resolved;      // the path to open or to rename onto: symbolic links followed
    TargetKind kind = TargetKind::new_file;
    std::uint64_t capacity = 0;        // block devices: size in bytes
    std::uint32_t logical_block = 512; // block devices: BLKSSZGET

    [[nodiscard]] bool in_place() const noexcept {
        return kind == TargetKind::block_device || kind == TargetKind::char_device;
    }
};

// Inspects `path` (following up to 40 symbolic links, dangling ones included).
Result<OutputTarget> inspect_output(const std::string &path);

}  // namespace hypersdk::io
