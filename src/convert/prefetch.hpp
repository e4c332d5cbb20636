// Reads planned ranges of a slow source (a disk behind a URL) ahead of a conversion, with several
// requests in flight regardless of how many cores convert: fetcher threads take the ranges in
// order, at most `budget` bytes ahead of what the conversion consumed. The window adapts to the
// latency: it starts small and doubles (up to `in_flight`) each time the conversion has to wait
// for a piece, so a near server is not flooded and a distant one gets as many requests as it
// takes to keep the conversion fed. The conversion reads
// through this device as usual; a read outside the plan goes straight to the source.
#pragma once

#include <hypersdk/cbt.hpp>
#include <hypersdk/disk.hpp>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace hypersdk::pipeline {

class PrefetchingDevice final : public BlockDevice {
public:
    // `plan`: the ranges that will be read, in ascending order (cut into pieces of at most
    // `piece` bytes). Fetching starts at once.
    PrefetchingDevice(BlockDevice &source, const ChangedExtents &plan, unsigned in_flight, std::uint64_t piece = 1u << 20,
                      std::uint64_t budget = 64u << 20);
    ~PrefetchingDevice() override;
    PrefetchingDevice(const PrefetchingDevice &) = delete;
    PrefetchingDevice &operator=(const PrefetchingDevice &) = delete;

    std::uint64_t virtual_size() const noexcept override { return source_.virtual_size(); }
    Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override {
        return source_.block_status(offset, length);
    }
    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override;

    // The most fetches that were ever in flight at once (for tests and benchmarks).
    [[nodiscard]] unsigned peak_in_flight() const;
    // The window the fetches grew to (at most `in_flight`).
    [[nodiscard]] unsigned window() const;

private:
    struct Piece {
        std::uint64_t offset = 0, length = 0;
        enum class State { waiting, fetching, ready, failed, consumed } state = State::waiting;
        std::vector<std::byte> bytes;
        std::uint64_t consumed = 0;
        std::optional<Error> error;
    };
    void fetcher();
    std::size_t first_piece_at_or_after(std::uint64_t offset) const;

    BlockDevice &source_;
    std::vector<Piece> pieces_;
    const std::uint64_t budget_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t next_ = 0;           // next piece to fetch
    std::uint64_t held_ = 0;         // bytes fetched or being fetched, not yet consumed
    unsigned in_flight_ = 0, peak_ = 0;
    unsigned window_ = 1, max_window_ = 1;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace hypersdk::pipeline
