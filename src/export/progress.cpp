#include "export/progress.hpp"

#include <fmt/format.h>

namespace hypersdk::exporter {

ExportProgressTracker::ExportProgressTracker(ExportProgressCallback callback, CancelToken cancel, unsigned disk_count)
    : callback_(std::move(callback)), cancel_(std::move(cancel)), disks_(disk_count) {}

void ExportProgressTracker::phase(std::string name) {
    std::lock_guard lock(mutex_);
    phase_ = std::move(name);
    report(true, 0);
}

void ExportProgressTracker::disk_started(unsigned i) {
    std::lock_guard lock(mutex_);
    if (i == 0 || i > disks_.size()) return;
    phase_ = fmt::format("exporting disk {} of {}", i, disks_.size());
    report(true, i);
}

void ExportProgressTracker::disk_total(unsigned i, std::uint64_t total) {
    std::lock_guard lock(mutex_);
    if (i == 0 || i > disks_.size()) return;
    disks_[i - 1].total = total;
}

void ExportProgressTracker::disk_bytes(unsigned i, std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    if (i == 0 || i > disks_.size()) return;
    disks_[i - 1].done += bytes;
    report(false, i);
}

void ExportProgressTracker::disk_resumed(unsigned i, std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    if (i == 0 || i > disks_.size()) return;
    disks_[i - 1].done += bytes;
    last_sample_bytes_ += bytes;  // keeps the smoothed rate to bytes that actually moved
    report(true, i);
}

void ExportProgressTracker::disk_restarted(unsigned i) {
    std::lock_guard lock(mutex_);
    if (i == 0 || i > disks_.size()) return;
    disks_[i - 1].done = 0;
    report(true, i);
}

std::uint64_t ExportProgressTracker::bytes_done() const {
    std::lock_guard lock(mutex_);
    std::uint64_t n = 0;
    for (const auto &d : disks_) n += d.done;
    return n;
}

int ExportProgressTracker::percent() const {
    std::lock_guard lock(mutex_);
    std::uint64_t done = 0, total = 0;
    for (const auto &d : disks_) {
        done += d.done;
        total += std::max(d.total, d.done);
    }
    return total == 0 ? 0 : static_cast<int>(done * 100 / total);
}

void ExportProgressTracker::report(bool force, unsigned disk) {
    const auto now = Clock::now();
    std::uint64_t done = 0, total = 0;
    bool total_known = true;
    unsigned disks_done = 0;
    for (const auto &d : disks_) {
        done += d.done;
        total += d.total;
        if (d.total == 0) total_known = false;
        if (d.total != 0 && d.done >= d.total) ++disks_done;
    }
    // Exponentially smoothed rate over samples at least 200 ms apart.
    if (last_sample_ == Clock::time_point{}) {
        last_sample_ = now;
        last_sample_bytes_ = done;
    } else if (now - last_sample_ >= std::chrono::milliseconds(200)) {
        const double secs = std::chrono::duration<double>(now - last_sample_).count();
        const double inst = done >= last_sample_bytes_ ? static_cast<double>(done - last_sample_bytes_) / secs : 0;
        rate_ = rate_ == 0 ? inst : 0.7 * rate_ + 0.3 * inst;
        last_sample_ = now;
        last_sample_bytes_ = done;
    }
    if (!callback_) return;
    if (!force && now - last_report_ < std::chrono::milliseconds(100)) return;
    last_report_ = now;
    ExportProgress p;
    p.phase = phase_;
    p.disk_count = static_cast<unsigned>(disks_.size());
    if (disk > 0) {
        p.disk_index = disk;
        p.disk_bytes_done = disks_[disk - 1].done;
        p.disk_bytes_total = disks_[disk - 1].total;
    }
    p.bytes_done = done;
    p.bytes_total = total;
    p.rate_bytes_per_sec = rate_;
    p.disks_done = disks_done;
    p.eta_seconds = total_known && rate_ > 0 && total >= done ? static_cast<double>(total - done) / rate_ : -1;
    if (callback_(p) == ProgressAction::cancel) cancel_.cancel();
}

}  // namespace hypersdk::exporter
