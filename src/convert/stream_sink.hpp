// Drives a format writer from an ascending stream of byte pieces (grains arriving off the network,
// an OVA member being read) without a random-access source or an intermediate file.
#pragma once

#include <hypersdk/progress.hpp>

#include "convert/unit.hpp"

#include <deque>
#include <future>

namespace hypersdk::pipeline {

class StreamSink {
public:
    // Zero detection and encoding (compression) run on the executor's worker pool, `threads` units at
    // a time (0 = the pool's size).
    // `io_fence` is the output's write-behind (AtomicOutputSet::io_ticket / wait_io), if it has one.
    StreamSink(format::DiskWriter &writer, std::uint64_t virtual_size, unsigned threads = 0,
               ProgressReporter *progress = nullptr, IoFence io_fence = {}, std::uint64_t unit_bytes = 2ULL << 20);
    ~StreamSink();
    StreamSink(const StreamSink &) = delete;
    StreamSink &operator=(const StreamSink &) = delete;

    // Pieces come in ascending, non-overlapping order; gaps between them read as zeros.
    Result<void> write(std::uint64_t offset, std::span<const std::byte> data);
    // A zlib-compressed piece that inflates to `length` bytes at `offset` (a streamOptimized grain;
    // `stream_offset` names it in messages): kept compressed and inflated on a worker with the rest
    // of its unit, so the thread feeding the sink only copies. A piece crossing a unit boundary is
    // inflated here.
    Result<void> write_deflated(std::uint64_t offset, std::size_t length, std::span<const std::byte> deflated,
                                std::uint64_t stream_offset);
    // Names the stream in the messages of write_deflated's pieces.
    void set_stream_name(std::string name) { stream_name_ = std::move(name); }
    // Everything written so far reaches the writer (its own finish() is the caller's job).
    Result<void> finish();
    [[nodiscard]] const CommitStats &stats() const noexcept { return stats_; }

private:
    Result<void> seal();
    Result<void> commit_front();
    Result<void> start_unit(std::uint64_t offset);        // makes current_ the unit holding `offset`
    void skip_to(std::size_t at);                          // zeroes (later) current_'s bytes up to `at`
    Result<void> check_piece(std::uint64_t offset, std::uint64_t length);
    // A compressed piece inflated on the calling thread, then written as usual.
    Result<void> inflate_and_write(std::uint64_t offset, std::size_t length, std::span<const std::byte> deflated,
                                   std::uint64_t stream_offset);

    format::DiskWriter &writer_;
    const std::uint64_t size_;
    std::uint64_t unit_;
    ProgressReporter *progress_;
    std::size_t window_;
    std::unique_ptr<PreparedUnit> current_;
    std::size_t filled_ = 0;  // bytes of current_ covered by pieces or gaps so far
    std::string stream_name_ = "stream";
    std::uint64_t next_offset_ = 0;  // pieces must start at or after this
    std::deque<std::future<Result<std::unique_ptr<PreparedUnit>>>> in_flight_;
    CommitStats stats_;
    RetiredUnits retired_;
    bool failed_ = false;
};

}  // namespace hypersdk::pipeline
