#include "convert/stream_sink.hpp"

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

Result<void> StreamSink::write(std::uint64_t offset, std::span<const std::byte> data) {
    if (failed_) return fail(Errc::internal, "stream sink used after a failure");
    if (offset < next_offset_)
        return fail(Errc::invalid_argument, fmt::format("stream piece at {:#x} goes backwards (next expected at or after {:#x})", offset, next_offset_));
    if (offset > size_ || data.size() > size_ - offset)
        return fail_corrupt(fmt::format("stream piece at {:#x}+{:#x} lies beyond the end of the disk ({} bytes)", offset, data.size(), size_));
    next_offset_ = offset + data.size();
    while (!data.empty()) {
        const std::uint64_t unit_begin = offset / unit_ * unit_;
        if (current_ && current_->begin != unit_begin) HSDK_TRYV(seal());
        if (!current_) {
            current_ = std::make_unique<PreparedUnit>();
            current_->begin = unit_begin;
            current_->buffer = std::make_unique<AlignedBuffer>(static_cast<std::size_t>(unit_));
            std::memset(current_->buffer->data(), 0, current_->buffer->size());
        }
        const auto at = static_cast<std::size_t>(offset - unit_begin);
        const auto n = std::min<std::size_t>(data.size(), current_->buffer->size() - at);
        std::memcpy(current_->buffer->data() + at, data.data(), n);
        current_->bytes_read += n;
        offset += n;
        data = data.subspan(n);
    }
    return success();
}

Result<void> StreamSink::seal() {
    auto unit = std::move(current_);
    auto *writer = &writer_;
    in_flight_.push_back(core::Executor::instance().workers().submit([writer, u = std::move(unit)]() mutable -> Result<std::unique_ptr<PreparedUnit>> {
        try {
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
