#include "format/vmdk/stream_parser.hpp"

#include "core/codec.hpp"
#include "format/vmdk/limits.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vmdk {

StreamParser::StreamParser(Handlers handlers, std::string what) : handlers_(std::move(handlers)), what_(std::move(what)) {}

Result<void> StreamParser::feed(std::span<const std::byte> bytes) {
    if (state_ == State::ended) {
        // Padding after the end-of-stream marker is harmless; anything else is not.
        if (std::any_of(bytes.begin(), bytes.end(), [](std::byte b) { return b != std::byte{0}; }))
            return fail_corrupt(fmt::format("{}: data after the end-of-stream marker (offset {:#x})", what_, consumed_));
        consumed_ += bytes.size();
        return success();
    }
    // Drop consumed bytes before growing the buffer so it stays around one grain in size.
    if (pending_start_ > 0) {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pending_start_));
        pending_start_ = 0;
    }
    pending_.insert(pending_.end(), bytes.begin(), bytes.end());
    bool progressed = true;
    while (progressed && state_ != State::ended) HSDK_TRYV(step(progressed));
    return success();
}

Result<void> StreamParser::step(bool &progressed) {
    progressed = false;
    const std::size_t available = pending_.size() - pending_start_;
    const std::byte *p = pending_.data() + pending_start_;
    auto take = [&](std::size_t n) {
        pending_start_ += n;
        consumed_ += n;
        progressed = true;
    };
    switch (state_) {
    case State::header: {
        if (available < sector_size) return success();
        if (!has_kdmv_magic(std::span(p, 4))) return fail_corrupt(fmt::format("{}: not a sparse VMDK (no KDMV signature)", what_));
        header_ = parse_sparse_header(std::span<const std::byte, 512>(p, 512));
        if (!header_.compressed() || !header_.has_markers())
            return fail_unsupported(fmt::format("{}: only stream-optimized VMDKs (compressed grains with markers) can be read as a stream", what_));
        if (!is_power_of_two(header_.grain_size) || header_.grain_size * sector_size > max_grain_bytes)
            return fail_corrupt(fmt::format("{}: grain size of {} sectors is out of range", what_, header_.grain_size));
        const auto cap = sectors_to_bytes(header_.capacity);
        if (!cap || *cap == 0 || *cap > max_disk_bytes)
            return fail_corrupt(fmt::format("{}: capacity of {} sectors is out of range", what_, header_.capacity));
        capacity_bytes_ = *cap;
        grain_bytes_ = header_.grain_size * sector_size;
        take(sector_size);
        if (handlers_.on_header) HSDK_TRYV(handlers_.on_header(header_));
        // Grains start after the header and the embedded descriptor, at `overhead` when writers
        // padded up to it (the padding would otherwise read as an end-of-stream marker).
        std::uint64_t first = std::max<std::uint64_t>(1, header_.descriptor_offset + header_.descriptor_size);
        if (header_.overhead >= first && header_.overhead < (1ULL << 32)) first = header_.overhead;
        skip_ = (first - 1) * sector_size;
        state_ = State::skip_to_grains;
        return success();
    }
    case State::skip_to_grains:
    case State::skip_metadata: {
        if (skip_ == 0) {
            state_ = State::marker;
            progressed = true;
            return success();
        }
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, available));
        if (n == 0) return success();
        take(n);
        skip_ -= n;
        return success();
    }
    case State::marker: {
        if (available < 16) return success();
        const Marker m = parse_marker(std::span(p, 16));
        if (m.size != 0) {
            if (m.value % header_.grain_size != 0 || m.value >= header_.capacity)
                return fail_corrupt(fmt::format("{}: grain marker at offset {:#x} names sector {}, not the start of a grain of the disk",
                                                what_, consumed_, m.value));
            if (m.size > 2 * grain_bytes_)
                return fail_corrupt(fmt::format("{}: compressed grain at offset {:#x} claims {} bytes", what_, consumed_, m.size));
            if (m.value * sector_size < next_min_offset_)
                return fail_unsupported(fmt::format("{}: grain for sector {} arrives after a later one; a stream must be in order to "
                                                    "convert it as it arrives",
                                                    what_, m.value));
            grain_lba_ = m.value;
            grain_size_ = m.size;
            state_ = State::grain_body;
            progressed = true;
            return success();
        }
        switch (static_cast<MarkerType>(m.type)) {
        case MarkerType::end_of_stream:
            take(sector_size <= available ? sector_size : 16);
            state_ = State::ended;
            return success();
        case MarkerType::grain_table:
        case MarkerType::grain_directory:
        case MarkerType::footer:
            if (m.value > (1ULL << 32))
                return fail_corrupt(fmt::format("{}: marker at offset {:#x} claims {} sectors of metadata", what_, consumed_, m.value));
            skip_ = sector_size + m.value * sector_size;
            state_ = State::skip_metadata;
            progressed = true;
            return success();
        default:
            return fail_corrupt(fmt::format("{}: unknown marker type {} at offset {:#x}", what_, m.type, consumed_));
        }
    }
    case State::grain_body: {
        const std::uint64_t span = (grain_marker_head + grain_size_ + sector_size - 1) / sector_size * sector_size;
        if (available < span) return success();
        const std::uint64_t offset = grain_lba_ * sector_size;
        const auto length = static_cast<std::size_t>(std::min(grain_bytes_, capacity_bytes_ - offset));
        if (handlers_.on_deflated_grain) {
            HSDK_TRYV(handlers_.on_deflated_grain(offset, length, std::span<const std::byte>(p + grain_marker_head, grain_size_), consumed_));
            take(static_cast<std::size_t>(span));
            next_min_offset_ = offset + length;
            state_ = State::marker;
            return success();
        }
        inflated_.resize(static_cast<std::size_t>(grain_bytes_));
        HSDK_TRY(auto n, core::codec::decompress_upto(core::codec::Kind::zlib, std::span(p + grain_marker_head, grain_size_), inflated_,
                                                fmt::format("{}: grain at offset {:#x}", what_, consumed_)));
        if (n < length)
            return fail_corrupt(fmt::format("{}: grain at offset {:#x} inflates to {} bytes, expected {}", what_, consumed_, n, length));
        take(static_cast<std::size_t>(span));
        next_min_offset_ = offset + length;
        state_ = State::marker;
        if (handlers_.on_grain) HSDK_TRYV(handlers_.on_grain(offset, std::span<const std::byte>(inflated_).first(length)));
        return success();
    }
    case State::ended: return success();
    }
    return success();
}

Result<void> StreamParser::finish() {
    if (state_ == State::ended) return success();
    if (state_ == State::header) return fail_corrupt(fmt::format("{}: the stream ended before its header", what_));
    // qemu-img writes its streams with the grain directory up front and no end-of-stream marker:
    // ending cleanly between two markers is accepted (the transport's length and the lease's
    // manifest vouch for completeness).
    if (state_ == State::marker && pending_.size() == pending_start_) return success();
    return fail_corrupt(fmt::format("{}: the stream ended at offset {:#x} without an end-of-stream marker", what_, consumed_ + (pending_.size() - pending_start_)));
}

}  // namespace hypersdk::format::vmdk
