// Positional file I/O with errors as values. Short reads are errors, never silent zeros.
#pragma once

#include <hypersdk/error.hpp>

#include "io/in_place.hpp"
#include "io/space_reservation.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::io {

// Maps an errno to our codes: ENOSPC/EDQUOT -> no_space, EACCES/EPERM/EROFS -> permission_denied,
// ENOENT -> not_found, anything else -> io_error. Message: "<what> '<path>': <strerror>".
Error errno_error(int err, std::string_view what, std::string_view path);

class File {
public:
    File() = default;
    ~File();
    File(File &&other) noexcept;
    File &operator=(File &&other) noexcept;
    File(const File &) = delete;
    File &operator=(const File &) = delete;

    static Result<File> open_read(const std::string &path);
    static Result<File> open_read_write(const std::string &path);
    // Creates a new file; fails with conflict if it exists.
    static Result<File> create_new(const std::string &path, unsigned mode = 0644);
    // Opens an existing device or file to write an image into it in place (see InPlaceWrites):
    // writes are recorded, truncate() sets the image's length without ever shrinking the target,
    // size() is that length, and finish_in_place() zeroes what no write covered.
    static Result<File> open_in_place(const OutputTarget &target, bool target_is_zero);

    [[nodiscard]] bool is_open() const noexcept { return fd_ >= 0; }
    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] const std::string &path() const noexcept { return path_; }

    // Reads exactly buf.size() bytes; a read that would cross the end of the file fails with
    // corrupt_image naming the offset (images that point past EOF are corrupt, not zero).
    Result<void> read_exact(std::uint64_t offset, std::span<std::byte> buf) const;
    // Reads up to buf.size() bytes; returns how many (0 at EOF).
    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const;
    Result<void> write_all(std::uint64_t offset, std::span<const std::byte> buf);
    Result<std::uint64_t> size() const;
    // Bytes the file occupies on its filesystem (st_blocks * 512).
    Result<std::uint64_t> allocated_size() const;
    Result<void> truncate(std::uint64_t length);
    Result<void> sync();
    Result<void> close();

    // In-place outputs only (no-ops otherwise): zero the gaps; or, after a failure, zero the start
    // of what was written so a partial image does not look whole.
    [[nodiscard]] bool in_place() const noexcept { return in_place_ != nullptr; }
    Result<void> finish_in_place();
    void invalidate_in_place(std::uint64_t bytes) noexcept;
    // The name messages use from now on (the destination, not its temporary).
    void set_display_path(std::string path) { path_ = std::move(path); }

    // Opens a second, O_DIRECT descriptor for writing: from then on, writes whose offset, length
    // and buffer are all 4 KiB aligned bypass the page cache (no copy, and the final fsync has
    // little left to flush); other writes stay buffered. Returns false (and changes nothing) where
    // the file system refuses O_DIRECT (tmpfs, some FUSE mounts).
    bool enable_direct_writes();
    [[nodiscard]] bool direct_writes() const noexcept { return direct_fd_ >= 0; }

    // Like write_all, but a direct-eligible write may be queued on the attached write-behind and
    // complete later: the caller keeps `buf` alive until the write-behind is drained. Writers use
    // it for the data the conversion pipeline hands them (see DiskWriter::commit).
    //
    // Queued writes go into space reserved ahead of them (see SpaceReservation), so they reach the
    // disk in parallel; sync() and close() give back what no write used, and size() does not count
    // it.
    Result<void> write_behind(std::uint64_t offset, std::span<const std::byte> buf);
    void attach_write_behind(class WriteBehind *queue) noexcept { write_behind_ = queue; }

private:
    File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    Result<void> pwrite_all(int fd, std::uint64_t offset, std::span<const std::byte> buf);
    Result<void> close_descriptors();
    int fd_ = -1;
    int direct_fd_ = -1;
    class WriteBehind *write_behind_ = nullptr;
    std::string path_;
    SpaceReservation reservation_;
    std::unique_ptr<InPlaceWrites> in_place_;
};

// Convenience for byte spans over trivially-copyable objects.
template <class T>
std::span<std::byte> as_writable_bytes_of(T &value) {
    return std::span<std::byte>(reinterpret_cast<std::byte *>(&value), sizeof(T));
}

}  // namespace hypersdk::io
