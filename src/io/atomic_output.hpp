// Output files that appear under their final names only when complete.
//
// Each file is written under a hidden temporary name in its destination folder; commit()
// flushes every file, renames them in the order they were added (so a descriptor added last
// appears last) and flushes the folders. Destroying an uncommitted set removes the temporaries:
// a failed or cancelled job never leaves a file that looks finished.
#pragma once

#include "io/file.hpp"
#include "io/write_behind.hpp"

#include <memory>
#include <string>
#include <vector>

namespace hypersdk::io {

class AtomicOutputSet {
public:
    AtomicOutputSet() = default;
    ~AtomicOutputSet();
    AtomicOutputSet(const AtomicOutputSet &) = delete;
    AtomicOutputSet &operator=(const AtomicOutputSet &) = delete;

    // Creates the temporary for `final_path`. Fails with conflict if `final_path` exists and
    // overwrite is false. The returned File stays owned by the set.
    Result<File *> add(const std::string &final_path, bool overwrite = true);
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

private:
    struct Entry {
        std::string final_path;
        std::string temp_path;
        std::unique_ptr<File> file;
    };
    std::vector<Entry> entries_;
    bool committed_ = false;
    bool direct_ = false;
    bool flush_ = true;
    std::unique_ptr<WriteBehind> write_behind_;
};

// Folder part of a path ("." for a bare name).
std::string parent_folder(const std::string &path);
// Final path component.
std::string base_name(const std::string &path);

}  // namespace hypersdk::io
