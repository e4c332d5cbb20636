#include "io/atomic_output.hpp"

#include <hypersdk/log.hpp>

#include "io/output_target.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {

using hypersdk::log;
using hypersdk::LogLevel;

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

namespace {

// ".NAME.hsdk-" : the prefix of every temporary of NAME.
std::string temporary_prefix(const std::string &final_name) { return "." + final_name + ".hsdk-"; }

// The PID a temporary's name carries (".NAME.hsdk-PID-RANDOM.part"), or 0.
pid_t pid_of_temporary(const std::string &name, const std::string &prefix) {
    if (name.compare(0, prefix.size(), prefix) != 0 || name.size() < prefix.size() + 7 ||
        name.compare(name.size() - 5, 5, ".part") != 0)
        return 0;
    const char *p = name.c_str() + prefix.size();
    char *end = nullptr;
    errno = 0;
    const long pid = std::strtol(p, &end, 10);
    if (errno != 0 || end == p || *end != '-' || pid <= 0 || pid > INT_MAX) return 0;
    return static_cast<pid_t>(pid);
}

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

std::size_t remove_stale_temporaries(const std::string &folder, const std::string &final_name) {
    const std::string prefix = temporary_prefix(final_name);
    DIR *dir = ::opendir(folder.c_str());
    if (dir == nullptr) return 0;
    std::vector<std::string> stale;
    while (const dirent *e = ::readdir(dir)) {
        const std::string name = e->d_name;
        const pid_t pid = pid_of_temporary(name, prefix);
        if (pid == 0 || pid == ::getpid() || !process_gone(pid)) continue;
        stale.push_back(name);
    }
    ::closedir(dir);
    std::size_t removed = 0;
    for (const auto &name : stale) {
        const std::string path = folder + "/" + name;
        // The lock is the proof: a process that still writes it (in another PID namespace, say) holds it.
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) continue;
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::unlink(path.c_str()) == 0) {
            ++removed;
            log(LogLevel::info, fmt::format("removed '{}', a temporary left by process {} which is gone", path,
                                            pid_of_temporary(name, prefix)));
        }
        ::close(fd);
    }
    return removed;
}

AtomicOutputSet::~AtomicOutputSet() {
    if (!committed_) abandon();
}

Result<File *> AtomicOutputSet::add(const std::string &final_path, bool overwrite) {
    OutputOptions o;
    o.overwrite = overwrite;
    return add(final_path, o);
}

Result<File *> AtomicOutputSet::add(const std::string &final_path, const OutputOptions &options) {
    HSDK_TRY(auto target, inspect_output(final_path));
    const bool exists = target.kind != TargetKind::new_file;
    if (exists && !options.overwrite) return fail(Errc::conflict, fmt::format("output '{}' already exists", final_path));
    switch (target.kind) {
    case TargetKind::directory: return fail(Errc::invalid_argument, fmt::format("output '{}' is a directory", final_path));
    case TargetKind::fifo_or_socket:
        return fail(Errc::unsupported, fmt::format("output '{}' is a FIFO or socket: images are written with random access; give "
                                                   "a file or a block device",
                                                   final_path));
    case TargetKind::new_file:
        if (options.skip_create)
            return fail(Errc::not_found, fmt::format("output '{}' does not exist (skip_create, -n, writes into an existing "
                                                     "file or device)",
                                                     final_path));
        break;
    case TargetKind::regular_file:
    case TargetKind::block_device:
    case TargetKind::char_device: break;
    }
    const bool in_place = target.in_place() || options.skip_create;
    if (in_place ? !entries_.empty() : std::any_of(entries_.begin(), entries_.end(), [](const Entry &e) { return e.in_place; }))
        return fail(Errc::unsupported, fmt::format("output '{}': an image written into a device or an existing file must be a "
                                                   "single file (choose a single-file subformat)",
                                                   final_path));
    if (in_place) {
        HSDK_TRY(auto file, File::open_in_place(target, options.target_is_zero));
        return add_file(Entry{target.resolved, {}, std::make_unique<File>(std::move(file)), true});
    }

    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const std::string folder = parent_folder(target.resolved);
    const std::string name = base_name(target.resolved);
    remove_stale_temporaries(folder, name);
    for (int attempt = 0; attempt < 16; ++attempt) {
        std::string temp = fmt::format("{}/{}{}-{:08x}.part", folder, temporary_prefix(name), ::getpid(), rng() & 0xffffffffULL);
        auto file = File::create_new(temp);
        if (file) {
            // Held until the file is closed: while it is, no other run takes it for a leftover.
            (void)::flock(file.value().fd(), LOCK_EX | LOCK_NB);
            file.value().set_display_path(final_path);
            return add_file(Entry{target.resolved, temp, std::make_unique<File>(std::move(file).value()), false});
        }
        if (file.error().code != Errc::conflict) {
            if (file.error().code == Errc::permission_denied || file.error().code == Errc::not_found)
                return fail(file.error().code,
                            fmt::format("cannot create output '{}' in '{}': {}", final_path, folder, file.error().message));
            return fail(file.error());
        }
    }
    return fail(Errc::io_error, fmt::format("cannot create a temporary file next to '{}'", final_path));
}

Result<File *> AtomicOutputSet::add_file(Entry entry) {
    if (direct_ && entry.file->enable_direct_writes()) {
        if (!write_behind_) write_behind_ = std::make_unique<WriteBehind>();
        entry.file->attach_write_behind(write_behind_.get());
    }
    entries_.push_back(std::move(entry));
    return entries_.back().file.get();
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
        HSDK_TRYV(e.file->finish_in_place());
        if (e.in_place) {
            HSDK_TRY(auto length, e.file->size());
            in_place_length_ = length;
        }
        if (flush_) HSDK_TRYV(e.file->sync());
        HSDK_TRYV(e.file->close());
    }
    for (auto &e : entries_) {
        if (e.in_place) continue;
        if (::rename(e.temp_path.c_str(), e.final_path.c_str()) != 0)
            return fail(errno_error(errno, "cannot rename into place", e.final_path));
        e.temp_path.clear();
    }
    // Make the renames durable.
    for (auto &e : entries_) {
        if (!flush_ || e.in_place) continue;
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
        if (e.in_place && e.file && invalidate_bytes_) e.file->invalidate_in_place(invalidate_bytes_);
        if (e.file) (void)e.file->close();
        if (!e.temp_path.empty()) ::unlink(e.temp_path.c_str());
    }
    entries_.clear();
}

}  // namespace hypersdk::io
