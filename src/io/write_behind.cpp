#include "io/write_behind.hpp"

#include "io/file.hpp"

#include <cerrno>
#include <unistd.h>

namespace hypersdk::io {

WriteBehind::WriteBehind(unsigned threads, std::size_t max_queued) : max_queued_(max_queued) {
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

WriteBehind::~WriteBehind() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    for (auto &t : threads_) t.join();
}

Result<void> WriteBehind::submit(int fd, std::uint64_t offset, std::span<const std::byte> data, const std::string *path) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return queue_.size() < max_queued_ || error_; });
    if (error_) return fail(*error_);
    const std::uint64_t seq = ++submitted_;
    pending_.insert(seq);
    queue_.push_back(Job{fd, offset, data, path, seq});
    changed_.notify_all();
    return success();
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
        changed_.wait(lock, [this] { return queue_.empty() && in_flight_ == 0; });
        return fail(*error_);
    }
    return success();
}

Result<void> WriteBehind::drain() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return (queue_.empty() && in_flight_ == 0) || error_; });
    // After a failure, queued jobs still must not outlive their buffers: wait for the workers.
    changed_.wait(lock, [this] { return queue_.empty() && in_flight_ == 0; });
    if (error_) return fail(*error_);
    return success();
}

void WriteBehind::run() {
    for (;;) {
        Job job;
        {
            std::unique_lock lock(mutex_);
            changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;
            job = queue_.front();
            queue_.pop_front();
            ++in_flight_;
        }
        std::optional<Error> failure;
        if (!failure) {
            std::size_t done = 0;
            while (done < job.data.size()) {
                const ssize_t n = ::pwrite(job.fd, job.data.data() + done, job.data.size() - done, static_cast<off_t>(job.offset + done));
                if (n < 0) {
                    if (errno == EINTR) continue;
                    failure = errno_error(errno, "cannot write", job.path ? *job.path : std::string("output"));
                    break;
                }
                done += static_cast<std::size_t>(n);
            }
        }
        {
            std::lock_guard lock(mutex_);
            --in_flight_;
            pending_.erase(job.seq);
            if (failure && !error_) error_ = std::move(failure);
            // Once failed, the rest of the queue is dropped: its data would be incomplete anyway.
            if (error_) {
                for (const auto &q : queue_) pending_.erase(q.seq);
                queue_.clear();
            }
        }
        changed_.notify_all();
    }
}

}  // namespace hypersdk::io
