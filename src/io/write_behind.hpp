// Write-behind for direct I/O: aligned data writes go to a few I/O threads so several are in flight
// at once (an O_DIRECT write waits for the device; one at a time leaves the disk idle between them).
// The caller keeps each buffer alive until drain() returns.
#pragma once

#include <hypersdk/error.hpp>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace hypersdk::io {

class WriteBehind {
public:
    explicit WriteBehind(unsigned threads = 4, std::size_t max_queued = 16);
    ~WriteBehind();
    WriteBehind(const WriteBehind &) = delete;
    WriteBehind &operator=(const WriteBehind &) = delete;

    // Queues a pwrite of `data` at `offset` on `fd` (blocks while the queue is full). A failure is
    // reported by a later submit() or drain(), naming `path`.
    Result<void> submit(int fd, std::uint64_t offset, std::span<const std::byte> data, const std::string *path);
    // Waits until every queued write has completed; returns the first failure.
    Result<void> drain();
    // Sequence number of the last write submitted (0 before any); wait_for(t) returns once every
    // write up to and including ticket t has completed - later ones may still be in flight.
    [[nodiscard]] std::uint64_t ticket();
    Result<void> wait_for(std::uint64_t ticket);

private:
    struct Job {
        int fd;
        std::uint64_t offset;
        std::span<const std::byte> data;
        const std::string *path;
        std::uint64_t seq;
    };
    void run();
    [[nodiscard]] std::uint64_t completed_through() const;  // requires mutex_

    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<Job> queue_;
    std::size_t in_flight_ = 0;
    std::uint64_t submitted_ = 0;
    std::set<std::uint64_t> pending_;  // queued or running
    std::size_t max_queued_;
    bool stopping_ = false;
    std::optional<Error> error_;
    std::vector<std::thread> threads_;
};

}  // namespace hypersdk::io
