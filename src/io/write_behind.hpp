// Write-behind for direct I/O: aligned data writes run on the executor's I/O pool, so several are in
// flight at once (an O_DIRECT write waits for the device; one at a time leaves the disk idle between
// them) while every output of every job shares the same few threads.
// The caller keeps each buffer alive until its write has completed (drain() or wait_for()).
#pragma once

#include <hypersdk/error.hpp>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>

namespace hypersdk::io {

class WriteBehind {
public:
    // At most `max_queued` writes of this queue wait or run at once; submit() blocks beyond that.
    explicit WriteBehind(std::size_t max_queued = 16);
    ~WriteBehind();  // waits for the writes still in flight
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
    struct Write {
        int fd;
        std::uint64_t offset;
        std::span<const std::byte> data;
        const std::string *path;
        std::uint64_t seq;
    };
    void perform(const Write &w);
    [[nodiscard]] std::uint64_t completed_through() const;  // requires mutex_

    std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t outstanding_ = 0;  // posted to the pool, not yet completed
    std::uint64_t submitted_ = 0;
    std::set<std::uint64_t> pending_;  // sequence numbers not yet completed
    std::size_t max_queued_;
    std::optional<Error> error_;
};

}  // namespace hypersdk::io
