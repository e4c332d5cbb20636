#include <hypersdk/progress.hpp>

namespace hypersdk {

ProgressReporter::ProgressReporter(ProgressCallback callback, CancelToken token, std::chrono::milliseconds interval)
    : callback_(std::move(callback)), token_(std::move(token)), interval_(interval) {}

void ProgressReporter::begin_phase(std::string phase, std::uint64_t bytes_total) {
    std::lock_guard lock(mutex_);
    ProgressInfo next;
    next.items_done = info_.items_done;
    next.items_total = info_.items_total;
    next.current_item = std::move(info_.current_item);
    info_ = std::move(next);
    info_.phase = std::move(phase);
    info_.bytes_total = bytes_total;
    phase_start_ = last_sample_ = Clock::now();
    last_sample_bytes_ = 0;
    maybe_report(true);
}

void ProgressReporter::set_total(std::uint64_t bytes_total) {
    std::lock_guard lock(mutex_);
    info_.bytes_total = bytes_total;
}

void ProgressReporter::advance(std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    info_.bytes_done += bytes;
    maybe_report(false);
}

void ProgressReporter::finish_phase() {
    std::lock_guard lock(mutex_);
    info_.finished = true;
    if (info_.bytes_total != 0 && info_.bytes_done < info_.bytes_total) info_.bytes_done = info_.bytes_total;
    info_.eta_seconds = 0;
    maybe_report(true);
}

void ProgressReporter::set_items(std::uint64_t done, std::uint64_t total) {
    std::lock_guard lock(mutex_);
    info_.items_done = done;
    info_.items_total = total;
    maybe_report(true);
}

void ProgressReporter::set_current_item(std::string item) {
    std::lock_guard lock(mutex_);
    info_.current_item = std::move(item);
    maybe_report(true);
}

ProgressInfo ProgressReporter::snapshot() const {
    std::lock_guard lock(mutex_);
    return info_;
}

void ProgressReporter::maybe_report(bool force) {
    const auto now = Clock::now();
    // Rate: exponentially smoothed over samples at least 200 ms apart, so bursts don't jitter the ETA.
    const double since_sample = std::chrono::duration<double>(now - last_sample_).count();
    if (since_sample >= 0.2) {
        const double instant = static_cast<double>(info_.bytes_done - last_sample_bytes_) / since_sample;
        info_.rate_bytes_per_sec = info_.rate_bytes_per_sec == 0 ? instant : 0.7 * info_.rate_bytes_per_sec + 0.3 * instant;
        last_sample_ = now;
        last_sample_bytes_ = info_.bytes_done;
    } else if (info_.finished) {
        const double elapsed = std::chrono::duration<double>(now - phase_start_).count();
        if (elapsed > 0 && info_.rate_bytes_per_sec == 0) info_.rate_bytes_per_sec = static_cast<double>(info_.bytes_done) / elapsed;
    }
    if (!info_.finished) {
        if (info_.bytes_total != 0 && info_.rate_bytes_per_sec > 0 && info_.bytes_done <= info_.bytes_total)
            info_.eta_seconds = static_cast<double>(info_.bytes_total - info_.bytes_done) / info_.rate_bytes_per_sec;
        else
            info_.eta_seconds = -1;
    }
    if (!callback_) return;
    if (!force && now - last_report_ < interval_) return;
    last_report_ = now;
    if (callback_(info_) == ProgressAction::cancel) token_.cancel();
}

}  // namespace hypersdk
