#include "convert/prefetch.hpp"

#include <algorithm>
#include <cstring>

namespace hypersdk::pipeline {

namespace {
constexpr unsigned initial_window = 4;
}  // namespace

PrefetchingDevice::PrefetchingDevice(BlockDevice &source, const ChangedExtents &plan, unsigned in_flight, std::uint64_t piece,
                                     std::uint64_t budget)
    : source_(source), budget_(std::max(budget, piece)) {
    const std::uint64_t size = source.virtual_size();
    for (const auto &r : plan.runs()) {
        const std::uint64_t end = std::min(r.end(), size);
        for (std::uint64_t pos = r.offset; pos < end;) {
            // Pieces end on multiples of `piece` so that they line up with the conversion's units.
            const std::uint64_t next = std::min(end, (pos / piece + 1) * piece);
            Piece p;
            p.offset = pos;
            p.length = next - pos;
            pieces_.push_back(std::move(p));
            pos = next;
        }
    }
    const unsigned n = std::max(1u, std::min<unsigned>(in_flight, static_cast<unsigned>(std::max<std::size_t>(1, pieces_.size()))));
    max_window_ = n;
    window_ = std::min(n, initial_window);
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { fetcher(); });
}

PrefetchingDevice::~PrefetchingDevice() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    for (auto &t : threads_) t.join();
}

unsigned PrefetchingDevice::window() const {
    std::lock_guard lock(mutex_);
    return window_;
}

unsigned PrefetchingDevice::peak_in_flight() const {
    std::lock_guard lock(mutex_);
    return peak_;
}

void PrefetchingDevice::fetcher() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [this] {
            return stopping_ ||
                   (next_ < pieces_.size() && in_flight_ < window_ && (held_ == 0 || held_ + pieces_[next_].length <= budget_));
        });
        if (stopping_) return;
        const std::size_t i = next_++;
        Piece &p = pieces_[i];
        p.state = Piece::State::fetching;
        held_ += p.length;
        ++in_flight_;
        peak_ = std::max(peak_, in_flight_);
        lock.unlock();
        std::vector<std::byte> bytes(static_cast<std::size_t>(p.length));
        auto r = source_.read(p.offset, bytes);
        lock.lock();
        --in_flight_;
        if (r) {
            p.bytes = std::move(bytes);
            p.state = Piece::State::ready;
        } else {
            p.error = r.error();
            p.state = Piece::State::failed;
        }
        changed_.notify_all();
    }
}

std::size_t PrefetchingDevice::first_piece_at_or_after(std::uint64_t offset) const {
    // The first piece that ends after `offset`.
    auto it = std::upper_bound(pieces_.begin(), pieces_.end(), offset, [](std::uint64_t o, const Piece &p) { return o < p.offset + p.length; });
    return static_cast<std::size_t>(it - pieces_.begin());
}

Result<void> PrefetchingDevice::read(std::uint64_t offset, std::span<std::byte> buf) {
    std::uint64_t pos = offset;
    const std::uint64_t end = offset + buf.size();
    std::size_t i = first_piece_at_or_after(offset);
    while (pos < end) {
        if (i >= pieces_.size() || pieces_[i].offset >= end || pieces_[i].offset > pos) {
            // Outside the plan: straight from the source.
            const std::uint64_t gap_end = i < pieces_.size() ? std::min(end, std::max(pos, pieces_[i].offset)) : end;
            const std::uint64_t upto = gap_end > pos ? gap_end : end;
            HSDK_TRYV(source_.read(pos, buf.subspan(static_cast<std::size_t>(pos - offset), static_cast<std::size_t>(upto - pos))));
            pos = upto;
            continue;
        }
        Piece &p = pieces_[i];
        const std::uint64_t take_end = std::min(end, p.offset + p.length);
        std::unique_lock lock(mutex_);
        auto arrived = [&] { return p.state == Piece::State::ready || p.state == Piece::State::failed || p.state == Piece::State::consumed; };
        if (!arrived() && window_ < max_window_) {
            // The conversion waits for the source: more requests in flight, up to the cap.
            window_ = std::min(max_window_, window_ * 2);
            changed_.notify_all();
        }
        changed_.wait(lock, arrived);
        if (p.state == Piece::State::failed) return fail(*p.error);
        if (p.state == Piece::State::consumed) {
            // Read twice (a retried unit): the bytes are gone, so ask the source again.
            lock.unlock();
            HSDK_TRYV(source_.read(pos, buf.subspan(static_cast<std::size_t>(pos - offset), static_cast<std::size_t>(take_end - pos))));
        } else {
            std::memcpy(buf.data() + (pos - offset), p.bytes.data() + (pos - p.offset), static_cast<std::size_t>(take_end - pos));
            p.consumed += take_end - pos;
            if (p.consumed >= p.length) {
                p.bytes = {};
                p.bytes.shrink_to_fit();
                p.state = Piece::State::consumed;
                held_ -= p.length;
                changed_.notify_all();
            }
        }
        pos = take_end;
        ++i;
    }
    return success();
}

}  // namespace hypersdk::pipeline
