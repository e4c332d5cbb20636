#include "io/atomic_output.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {

std::string parent_folder(const std::string &path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string base_name(const std::string &path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

AtomicOutputSet::~AtomicOutputSet() {
    if (!committed_) abandon();
}

Result<File *> AtomicOutputSet::add(const std::string &final_path, bool overwrite) {
    struct stat st {};
    if (::stat(final_path.c_str(), &st) == 0) {
        if (!overwrite) return fail(Errc::conflict, fmt::format("output '{}' already exists", final_path));
        if (S_ISDIR(st.st_mode)) return fail(Errc::invalid_argument, fmt::format("output '{}' is a directory", final_path));
    }
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const std::string folder = parent_folder(final_path);
    for (int attempt = 0; attempt < 16; ++attempt) {
        std::string temp = fmt::format("{}/.{}.hsdk-{:012x}.part", folder, base_name(final_path), rng() & 0xffffffffffffULL);
        auto file = File::create_new(temp);
        if (file) {
            if (direct_ && file.value().enable_direct_writes()) {
                if (!write_behind_) write_behind_ = std::make_unique<WriteBehind>();
                file.value().attach_write_behind(write_behind_.get());
            }
            entries_.push_back(Entry{final_path, temp, std::make_unique<File>(std::move(file).value())});
            return entries_.back().file.get();
        }
        if (file.error().code != Errc::conflict) return fail(file.error());
    }
    return fail(Errc::io_error, fmt::format("cannot create a temporary file next to '{}'", final_path));
}

Result<void> AtomicOutputSet::drain() {
    if (write_behind_) return write_behind_->drain();
    return success();
}

std::uint64_t AtomicOutputSet::io_ticket() { return write_behind_ ? write_behind_->ticket() : 0; }

Result<void> AtomicOutputSet::wait_io(std::uint64_t ticket) {
    if (write_behind_) return write_behind_->wait_for(ticket);
    return success();
}

Result<void> AtomicOutputSet::commit() {
    HSDK_TRYV(drain());
    for (auto &e : entries_) {
        if (flush_) HSDK_TRYV(e.file->sync());
        HSDK_TRYV(e.file->close());
    }
    for (auto &e : entries_) {
        if (::rename(e.temp_path.c_str(), e.final_path.c_str()) != 0)
            return fail(errno_error(errno, "cannot rename into place", e.final_path));
        e.temp_path.clear();
    }
    // Make the renames durable.
    for (auto &e : entries_) {
        if (!flush_) break;
        const int dfd = ::open(parent_folder(e.final_path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }
    committed_ = true;
    return success();
}

void AtomicOutputSet::abandon() noexcept {
    if (write_behind_) (void)write_behind_->drain();  // no write may land after the file is gone
    for (auto &e : entries_) {
        if (e.file) (void)e.file->close();
        if (!e.temp_path.empty()) ::unlink(e.temp_path.c_str());
    }
    entries_.clear();
}

}  // namespace hypersdk::io
