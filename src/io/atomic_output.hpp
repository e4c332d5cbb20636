// Output files that appear under their final names only when complete.
//
// Each file is written under a hidden temporary name in its destination folder
// (".NAME.hsdk-PID-RANDOM.part", locked with flock while it is written); commit() flushes every
// file, renames them in the order they were added (so a descriptor added last appears last) and
// flushes the folders. Destroying an uncommitted set removes the temporaries: a failed or
// cancelled job never leaves a file that looks finished. Temporaries that a killed process left
// for the same destination (its PID gone, its lock free) are removed when the next one is made.
//
// A destination that is a block or character device, or an existing file with skip_create (qemu-img
// convert -n), is written in place instead (io/in_place.hpp); a symbolic link is followed, so the
// file it points to is replaced and the link stays. A FIFO or socket is refused.
#pragma once

#include "io/file.hpp"
#include "io/write_behind.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk::io {

struct OutputOptions {
    bool overwrite = true;        // an existing destination may be replaced (a device: written)
    bool skip_create = false;     // write into the existing file or device, in place (qemu-img -n)
    bool target_is_zero = false;  // in place: the target already reads as zeros, skip zeroing the gaps
};

class AtomicOutputSet {
public:
    AtomicOutputSet() = default;
    ~AtomicOutputSet();
    AtomicOutputSet(const AtomicOutputSet &) = delete;
    AtomicOutputSet &operator=(const AtomicOutputSet &) = delete;

    // Creates the temporary for `final_path` (or opens it for writing in place, see above). Fails
    // with conflict if `final_path` exists and overwrite is false. The returned File stays owned by
    // the set; its messages name `final_path`.
    Result<File *> add(const std::string &final_path, bool overwrite);
    Result<File *> add(const std::string &final_path, const OutputOptions &options);
    // With the options set_output_options() gave (writers call this one).
    Result<File *> add(const std::string &final_path) { return add(final_path, defaults_); }
    void set_output_options(const OutputOptions &options) noexcept { defaults_ = options; }
    // After a failure, an in-place output gets its first `bytes` zeroed, so the header of a partial
    // image (qcow2, VHDX, ...) does not make it look whole. 0 (the default, right for raw) leaves it.
    void set_invalidate_on_failure(std::uint64_t bytes) noexcept { invalidate_bytes_ = bytes; }
    // Files added from now on write aligned data with O_DIRECT where the file system allows, with
    // several such writes in flight (File::write_behind); drain() waits for them.
    void set_direct_writes(bool on) noexcept { direct_ = on; }
    // Off: commit() renames without fsyncing the files or their folders, leaving the data in the
    // page cache (qemu-img convert's default, "-t unsafe"). A crash soon after may lose data of a
    // file that already has its final name; completion is still all-or-nothing for this process.
    void set_flush(bool on) noexcept { flush_ = on; }
    Result<void> drain();
    // See WriteBehind::ticket / wait_for (0 and success when nothing writes behind).
    [[nodiscard]] std::uint64_t io_ticket();
    Result<void> wait_io(std::uint64_t ticket);

    Result<void> commit();
    // Removes every temporary now (also done by the destructor).
    void abandon() noexcept;

    [[nodiscard]] bool committed() const noexcept { return committed_; }
    // Whether an output of the set is written in place (a device, or -n).
    [[nodiscard]] bool in_place() const noexcept {
        for (const auto &e : entries_)
            if (e.in_place) return true;
        return false;
    }
    // After commit(): the length of the image written in place, if the output was in place.
    [[nodiscard]] std::optional<std::uint64_t> in_place_length() const noexcept { return in_place_length_; }

private:
    struct Entry {
        std::string final_path;  // the path to rename onto (symbolic links followed)
        std::string temp_path;   // empty for in-place outputs
        std::unique_ptr<File> file;
        bool in_place = false;
    };
    Result<File *> add_file(Entry entry);
    std::vector<Entry> entries_;
    bool committed_ = false;
    bool direct_ = false;
    bool flush_ = true;
    std::uint64_t invalidate_bytes_ = 0;
    OutputOptions defaults_;
    std::optional<std::uint64_t> in_place_length_;
    std::unique_ptr<WriteBehind> write_behind_;
};

// Folder part of a path ("." for a bare name).
std::string parent_folder(const std::string &path);
// Final path component.
std::string base_name(const std::string &path);
// Removes temporaries of `final_path` in `folder` whose process is gone (its PID no longer runs and
// no one holds the file's lock). Returns how many were removed.
std::size_t remove_stale_temporaries(const std::string &folder, const std::string &final_name);

}  // namespace hypersdk::io
