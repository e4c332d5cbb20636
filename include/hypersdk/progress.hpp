// Progress reporting for long operations: phase, bytes, rate and ETA; the callback may cancel.
#pragma once

#include <hypersdk/cancel.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

namespace hypersdk {

struct ProgressInfo {
    std::string phase;          // "converting", "exporting disk 1 of 2", ...
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;  // 0 when unknown
    double rate_bytes_per_sec = 0;  // smoothed
    double eta_seconds = -1;        // negative when unknown
    bool finished = false;          // the last report of a phase
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
