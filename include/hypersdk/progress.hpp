// Progress reporting for long operations: phase, bytes, rate and ETA; the callback may cancel.
#pragma once

#include <hypersdk/cancel.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace hypersdk {

// The one progress event of every operation.
struct ProgressInfo {
    std::string phase;          // "converting", "exporting disk 1 of 2", ...
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;  // 0 when unknown
    double rate_bytes_per_sec = 0;  // smoothed
    double eta_seconds = -1;        // negative when unknown
    bool finished = false;          // the last report of a phase
    std::uint64_t items_done = 0;   // disks, files, VMs done, for operations made of several
    std::uint64_t items_total = 0;  // 0 when the operation is not made of items
    std::uint64_t item_index = 0;   // 1-based index of the item this event is about, 0 for none
    std::string current_item;       // that item's name ("disk 1 of 2"), empty for none
    std::uint64_t item_bytes_done = 0;
    std::uint64_t item_bytes_total = 0;  // 0 when unknown
    std::string job_id;                  // the job reporting, when the operation runs as a job
};

enum class ProgressAction { proceed, cancel };

using ProgressCallback = std::function<ProgressAction(const ProgressInfo &)>;

// Thread-safe aggregator: workers add bytes; the callback runs at most every `interval`
// (and on every phase change and at the end), under a lock, on whichever thread reported.
// A callback that answers ProgressAction::cancel cancels `token`.
class ProgressReporter {
public:
    explicit ProgressReporter(ProgressCallback callback = {}, CancelToken token = {},
                              std::chrono::milliseconds interval = std::chrono::milliseconds(100));

    void begin_phase(std::string phase, std::uint64_t bytes_total);
    void set_total(std::uint64_t bytes_total);
    void advance(std::uint64_t bytes);
    void finish_phase();
    // Items (disks, files) of an operation made of several; kept across phases.
    void set_items(std::uint64_t done, std::uint64_t total);
    void set_current_item(std::string item);

    [[nodiscard]] const CancelToken &token() const noexcept { return token_; }
    [[nodiscard]] ProgressInfo snapshot() const;

private:
    void maybe_report(bool force);  // requires mutex_ held
    using Clock = std::chrono::steady_clock;

    ProgressCallback callback_;
    CancelToken token_;
    std::chrono::milliseconds interval_;
    mutable std::mutex mutex_;
    ProgressInfo info_;
    Clock::time_point phase_start_{};
    Clock::time_point last_report_{};
    Clock::time_point last_sample_{};
    std::uint64_t last_sample_bytes_ = 0;
};

}  // namespace hypersdk
