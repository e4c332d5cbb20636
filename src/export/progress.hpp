// Export progress: phases and per-disk / overall bytes, with a smoothed rate and ETA. Reports at
// most every 100 ms (and on every phase change); a callback answering cancel cancels the token.
#pragma once

#include <hypersdk/export.hpp>

#include <chrono>
#include <mutex>
#include <vector>

namespace hypersdk::exporter {

class ExportProgressTracker {
public:
    ExportProgressTracker(ExportProgressCallback callback, CancelToken cancel, unsigned disk_count);

    void phase(std::string name);  // also forgets the current disk
    void disk_started(unsigned index_1based);
    void disk_total(unsigned index_1based, std::uint64_t total);
    void disk_bytes(unsigned index_1based, std::uint64_t bytes);
    // Bytes a resumed disk already had: counted as done, not as transfer rate.
    void disk_resumed(unsigned index_1based, std::uint64_t bytes);
    void disk_restarted(unsigned index_1based);  // the disk's bytes start again from zero
    [[nodiscard]] std::uint64_t bytes_done() const;
    [[nodiscard]] int percent() const;  // 0..100 over all disks, for HttpNfcLeaseProgress

private:
    void report(bool force, unsigned disk);  // requires mutex_
    using Clock = std::chrono::steady_clock;
    struct Disk {
        std::uint64_t done = 0, total = 0;
    };
    ExportProgressCallback callback_;
    CancelToken cancel_;
    mutable std::mutex mutex_;
    std::string phase_;
    std::vector<Disk> disks_;
    Clock::time_point last_report_{}, last_sample_{};
    std::uint64_t last_sample_bytes_ = 0;
    double rate_ = 0;
};

}  // namespace hypersdk::exporter
