// Parsing a streamOptimized VMDK as its bytes arrive - an NFC lease's HTTP body - front to back,
// with no seeking and no temporary file: each grain is inflated and handed on at its offset.
#pragma once

#include "format/vmdk/sparse_header.hpp"

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace hypersdk::format::vmdk {

class StreamParser {
public:
    struct Handlers {
        // Called once, when the header has arrived: the disk's size is known from here on.
        std::function<Result<void>(const SparseHeader &header)> on_header;
        // A grain's bytes at its byte offset in the virtual disk, in ascending order (the last grain
        // may be shorter: it stops at the end of the disk).
        std::function<Result<void>(std::uint64_t offset, std::span<const std::byte> data)> on_grain;
        // When set, instead of on_grain: a grain still zlib-compressed, to inflate to `length` bytes
        // at `offset` (elsewhere: on a worker); `stream_offset` is where its marker sits in the
        // stream, for messages. The bytes are valid during the call only.
        std::function<Result<void>(std::uint64_t offset, std::size_t length, std::span<const std::byte> deflated,
                                   std::uint64_t stream_offset)>
            on_deflated_grain;
    };

    // `what` names the stream in error messages.
    StreamParser(Handlers handlers, std::string what);

    // Any chunking of the stream is fine.
    Result<void> feed(std::span<const std::byte> bytes);
    // The stream is over: fails when it stops inside the header, a marker, a grain or metadata.
    Result<void> finish();
    [[nodiscard]] std::uint64_t bytes_consumed() const noexcept { return consumed_; }

private:
    Result<void> step(bool &progressed);

    enum class State { header, skip_to_grains, marker, grain_body, skip_metadata, ended };

    Handlers handlers_;
    std::string what_;
    State state_ = State::header;
    SparseHeader header_{};
    std::uint64_t capacity_bytes_ = 0;
    std::uint64_t grain_bytes_ = 0;
    std::vector<std::byte> pending_;  // bytes received but not used yet
    std::size_t pending_start_ = 0;
    std::uint64_t consumed_ = 0;      // stream offset of pending_[pending_start_]
    std::uint64_t skip_ = 0;          // bytes still to drop (descriptor, padding, metadata)
    std::uint64_t grain_lba_ = 0;     // current grain marker
    std::uint32_t grain_size_ = 0;
    std::uint64_t next_min_offset_ = 0;  // grains must ascend
    std::vector<std::byte> inflated_;
};

}  // namespace hypersdk::format::vmdk
