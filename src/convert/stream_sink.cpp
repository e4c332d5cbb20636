#include "convert/stream_sink.hpp"

#include "core/codec.hpp"
#include "core/executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::pipeline {

StreamSink::StreamSink(format::DiskWriter &writer, std::uint64_t virtual_size, unsigned threads, ProgressReporter *progress,
                       IoFence io_fence, std::uint64_t unit_bytes)
    : writer_(writer), size_(virtual_size), progress_(progress), window_(2 * core::worker_parallelism(threads) + 2),
      retired_(std::move(io_fence)) {
    const std::uint64_t g = writer.granularity();
    unit_ = std::max(g, unit_bytes / g * g);
}

StreamSink::~StreamSink() {
    // Work still queued refers to this sink's writer: let it finish (results are discarded).
    for (auto &f : in_flight_)
        if (f.valid()) f.wait();
}

Result<void> StreamSink::check_piece(std::uint64_t offset, std::uint64_t length) {
    if (failed_) return fail(Errc::internal, "stream sink used after a failure");
    if (offset < next_offset_)
        return fail(Errc::invalid_argument, fmt::format("stream piece at {:#x} goes backwards (next expected at or after {:#x})", offset, next_offset_));
    if (offset > size_ || length > size_ - offset)
        return fail_corrupt(fmt::format("stream piece at {:#x}+{:#x} lies beyond the end of the disk ({} bytes)", offset, length, size_));
    next_offset_ = offset + length;
    return success();
}

Result<void> StreamSink::start_unit(std::uint64_t offset) {
    const std::uint64_t unit_begin = offset / unit_ * unit_;
    if (current_ && current_->begin != unit_begin) HSDK_TRYV(seal());
    if (!current_) {
        current_ = std::make_unique<PreparedUnit>();
        current_->begin = unit_begin;
        current_->buffer = std::make_unique<AlignedBuffer>(static_cast<std::size_t>(unit_));
        filled_ = 0;
    }
    return success();
}

void StreamSink::skip_to(std::size_t at) {
    // Gaps are zeroed by the worker that prepares the unit: pieces usually cover it whole.
    if (at > filled_) current_->zero_gaps.emplace_back(filled_, at - filled_);
}

Result<void> StreamSink::write(std::uint64_t offset, std::span<const std::byte> data) {
    HSDK_TRYV(check_piece(offset, data.size()));
    while (!data.empty()) {
        HSDK_TRYV(start_unit(offset));
        const auto at = static_cast<std::size_t>(offset - current_->begin);
        const auto n = std::min<std::size_t>(data.size(), current_->buffer->size() - at);
        skip_to(at);
        std::memcpy(current_->buffer->data() + at, data.data(), n);
        filled_ = at + n;
        current_->bytes_read += n;
        offset += n;
        data = data.subspan(n);
    }
    return success();
}

Result<void> StreamSink::inflate_and_write(std::uint64_t offset, std::size_t length, std::span<const std::byte> deflated,
                                           std::uint64_t stream_offset) {
    std::vector<std::byte> plain(length);
    HSDK_TRY(auto n, core::codec::decompress_upto(core::codec::Kind::zlib, deflated, plain,
                              fmt::format("{}: grain at offset {:#x}", stream_name_, stream_offset)));
    if (n < length)
        return fail_corrupt(fmt::format("{}: grain at offset {:#x} inflates to {} bytes, expected {}", stream_name_, stream_offset, n, length));
    return write(offset, plain);
}

Result<void> StreamSink::write_deflated(std::uint64_t offset, std::size_t length, std::span<const std::byte> deflated,
                                        std::uint64_t stream_offset) {
    if (length == 0) return success();
    if (offset / unit_ != (offset + length - 1) / unit_) {
        // Crosses into the next unit (only a stream with odd grain offsets does that): inflate here.
        return inflate_and_write(offset, length, deflated, stream_offset);
    }
    HSDK_TRYV(check_piece(offset, length));
    HSDK_TRYV(start_unit(offset));
    PreparedUnit &u = *current_;
    // Compressed grains are about half their size; the arena holds a unit's worth plus a little, so
    // only a run of incompressible grains spills (and is then inflated here).
    if (!u.arena) u.arena = std::make_unique<AlignedBuffer>(static_cast<std::size_t>(unit_ + unit_ / 8));
    if (u.arena_used + deflated.size() > u.arena->size()) {
        next_offset_ = offset;  // write() checks the piece again
        return inflate_and_write(offset, length, deflated, stream_offset);
    }
    const auto at = static_cast<std::size_t>(offset - u.begin);
    skip_to(at);
    std::memcpy(u.arena->data() + u.arena_used, deflated.data(), deflated.size());
    u.deflated.push_back(DeflatedPiece{at, length, u.arena_used, deflated.size(), stream_offset});
    u.arena_used += deflated.size();
    filled_ = at + length;
    current_->bytes_read += length;
    return success();
}

namespace {

// The worker's part of a stream unit: zero what no piece covered, inflate the compressed pieces.
Result<void> complete_stream_unit(PreparedUnit &u, const std::string &stream_name) {
    for (const auto &[at, n] : u.zero_gaps) std::memset(u.buffer->data() + at, 0, n);
    for (const auto &piece : u.deflated) {
        // Inflated straight into place; a grain cut at the disk's end fills just its part (what
        // does not fit is dropped, as the streamOptimized reader does).
        const std::string what = fmt::format("{}: grain at offset {:#x}", stream_name, piece.stream_offset);
        HSDK_TRY(auto n, core::codec::decompress_upto(core::codec::Kind::zlib, u.arena->span().subspan(piece.from, piece.size),
                                                      u.buffer->span().subspan(piece.at, piece.length), what));
        if (n < piece.length) return fail_corrupt(fmt::format("{} inflates to {} bytes, expected {}", what, n, piece.length));
    }
    u.deflated.clear();
    u.arena.reset();  // back to the buffer cache
    u.arena_used = 0;
    return success();
}

}  // namespace

Result<void> StreamSink::seal() {
    skip_to(current_->buffer->size());
    auto unit = std::move(current_);
    auto *writer = &writer_;
    in_flight_.push_back(core::Executor::instance().workers().submit(
        [writer, u = std::move(unit), name = stream_name_]() mutable -> Result<std::unique_ptr<PreparedUnit>> {
            try {
                HSDK_TRYV(complete_stream_unit(*u, name));
                HSDK_TRYV(prepare_unit(*writer, *u, writer->granularity()));
            } catch (const std::bad_alloc &) {
                return fail(Errc::no_memory, "out of memory preparing a stream unit");
            }
            return std::move(u);
        }));
    while (in_flight_.size() > window_) HSDK_TRYV(commit_front());
    return success();
}

Result<void> StreamSink::commit_front() {
    auto r = in_flight_.front().get();
    in_flight_.pop_front();
    if (!r) {
        failed_ = true;
        return fail(r.error());
    }
    auto unit = std::move(r).value();
    auto committed = commit_unit(writer_, *unit, stats_);
    if (!committed) {
        failed_ = true;
        return committed;
    }
    if (progress_) progress_->advance(unit->bytes_read);
    return retired_.retire(std::move(*unit));
}

Result<void> StreamSink::finish() {
    if (current_) HSDK_TRYV(seal());
    while (!in_flight_.empty()) HSDK_TRYV(commit_front());
    return retired_.drain_all();
}

}  // namespace hypersdk::pipeline
