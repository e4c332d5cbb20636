// A unit of conversion work shared by the random-access pipeline and the streaming sink: a
// granule-aligned buffer, its zero detection and encoding (any thread), and its ordered commit.
#pragma once

#include "format/layer.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace hypersdk::pipeline {

// Page-aligned buffer so writers may use O_DIRECT.
class AlignedBuffer {
public:
    explicit AlignedBuffer(std::size_t size);
    ~AlignedBuffer();
    AlignedBuffer(const AlignedBuffer &) = delete;
    AlignedBuffer &operator=(const AlignedBuffer &) = delete;
    [[nodiscard]] std::byte *data() noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::span<std::byte> span() noexcept { return {data_, size_}; }

private:
    std::byte *data_ = nullptr;
    std::size_t size_ = 0;
};

enum class RunKind { write, zero };

struct Run {
    std::uint64_t offset;
    std::uint64_t length;
    RunKind kind;
    format::EncodedRun encoded;
};

// Bytes of a stream unit still zlib-compressed (a streamOptimized grain): inflated into the unit's
// buffer by the worker that prepares it, not by the thread that receives the stream.
struct DeflatedPiece {
    std::size_t at = 0;      // where in the unit's buffer
    std::size_t length = 0;  // bytes it must inflate to (at least)
    std::size_t from = 0, size = 0;  // its compressed bytes in the unit's arena
    std::uint64_t stream_offset = 0;  // where it was in its stream, for messages
};

struct PreparedUnit {
    std::uint64_t begin = 0;
    std::unique_ptr<AlignedBuffer> buffer;
    // Stream units only: ranges of the buffer no piece covered (zeroed by the worker) and pieces
    // still to inflate there.
    std::vector<std::pair<std::size_t, std::size_t>> zero_gaps;
    std::vector<DeflatedPiece> deflated;
    // The compressed bytes of `deflated`, one after the other: a recycled buffer, so the thread
    // feeding the sink does not allocate (and fault in fresh pages) for every grain.
    std::unique_ptr<AlignedBuffer> arena;
    std::size_t arena_used = 0;
    std::vector<Run> runs;
    std::uint64_t bytes_read = 0;  // source bytes the unit covers (for progress)
};

// Splits unit.buffer into granule runs: all-zero granules are dropped; with `backing` (the same
// range of the output's backing image) granules equal to it are dropped and zero granules over
// backing data become RunKind::zero. Then encodes write runs if the writer has an encoder.
// Thread-safe with respect to other units.
// Splits a unit into runs to write and zeros to skip, checking zeros in pieces of `detect` bytes (a
// multiple of the writer's granularity); detect 0 writes every piece, zeros included.
// `zeros_hide_backing`: the output has a backing image that is not read (an encrypted one), so every
// zero piece becomes RunKind::zero (a hole would show the backing's data through).
Result<void> prepare_unit(const format::DiskWriter &writer, PreparedUnit &unit, std::uint64_t detect,
                          std::span<const std::byte> backing = {}, bool zeros_hide_backing = false);

struct CommitStats {
    std::uint64_t bytes_read = 0;
    std::uint64_t bytes_written = 0;
    std::uint64_t units = 0;
};

// Hands a prepared unit's runs to the writer (call in ascending order, from one thread).
Result<void> commit_unit(format::DiskWriter &writer, PreparedUnit &unit, CommitStats &stats);

// The output's write-behind, seen through tickets (AtomicOutputSet::io_ticket / wait_io).
struct IoFence {
    std::function<std::uint64_t()> ticket;
    std::function<Result<void>(std::uint64_t)> wait;
    [[nodiscard]] explicit operator bool() const noexcept { return ticket && wait; }
};

// Keeps committed units alive while writes of their data may still be in flight (write-behind):
// once more than `window` are held, waits for the oldest one's writes only; waits for all before
// letting go of them - also on failure paths.
class RetiredUnits {
public:
    explicit RetiredUnits(IoFence fence, std::size_t window = 8) : fence_(std::move(fence)), window_(window) {}
    ~RetiredUnits();
    RetiredUnits(const RetiredUnits &) = delete;
    RetiredUnits &operator=(const RetiredUnits &) = delete;

    Result<void> retire(PreparedUnit unit);
    Result<void> drain_all();

private:
    IoFence fence_;
    std::size_t window_;
    std::deque<std::pair<PreparedUnit, std::uint64_t>> units_;  // with the ticket of their last write
};

}  // namespace hypersdk::pipeline
