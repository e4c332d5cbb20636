#include "io/write_behind.hpp"

#include "core/executor.hpp"
#include "io/file.hpp"

#include <cerrno>
#include <unistd.h>

namespace hypersdk::io {

WriteBehind::WriteBehind(std::size_t max_queued) : max_queued_(max_queued == 0 ? 1 : max_queued) {}

WriteBehind::~WriteBehind() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return outstanding_ == 0; });
}

Result<void> WriteBehind::submit(int fd, std::uint64_t offset, std::span<const std::byte> data, const std::string *path) {
    Write w{fd, offset, data, path, 0};
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return outstanding_ < max_queued_ || error_; });
        if (error_) return fail(*error_);
        w.seq = ++submitted_;
        pending_.insert(w.seq);
        ++outstanding_;
    }
    core::Executor::instance().io().post([this, w] { perform(w); });
    return success();
}

void WriteBehind::perform(const Write &w) {
    bool skip;
    {
        std::lock_guard lock(mutex_);
        // Once a write has failed, the rest are dropped: the output is incomplete anyway.
        skip = error_.has_value();
    }
    std::optional<Error> failure;
    if (!skip) {
        std::size_t done = 0;
        while (done < w.data.size()) {
            const ssize_t n = ::pwrite(w.fd, w.data.data() + done, w.data.size() - done, static_cast<off_t>(w.offset + done));
            if (n < 0) {
                if (errno == EINTR) continue;
                failure = errno_error(errno, "cannot write", w.path ? *w.path : std::string("output"));
                break;
            }
            done += static_cast<std::size_t>(n);
        }
    }
    std::lock_guard lock(mutex_);
    --outstanding_;
    pending_.erase(w.seq);
    if (failure && !error_) error_ = std::move(failure);
    changed_.notify_all();
}

std::uint64_t WriteBehind::completed_through() const { return pending_.empty() ? submitted_ : *pending_.begin() - 1; }

std::uint64_t WriteBehind::ticket() {
    std::lock_guard lock(mutex_);
    return submitted_;
}

Result<void> WriteBehind::wait_for(std::uint64_t ticket) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return completed_through() >= ticket || error_; });
    if (error_) {
        // No write may still run on a buffer the caller is about to release.
        changed_.wait(lock, [this] { return outstanding_ == 0; });
        return fail(*error_);
    }
    return success();
}

Result<void> WriteBehind::drain() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return outstanding_ == 0; });
    if (error_) return fail(*error_);
    return success();
}

}  // namespace hypersdk::io
