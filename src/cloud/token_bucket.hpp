// A token bucket that adapts: it starts at the documented rate limit and halves on each
// throttling answer, then creeps back up while requests succeed (additive increase,
// multiplicative decrease), so a shared limit is found without a storm of refusals.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

namespace hypersdk::cloud {

class TokenBucket {
public:
    // rate: requests per second at most (0: no limit); burst: tokens that may be spent at once.
    explicit TokenBucket(double rate = 0, double burst = 0)
        : max_rate_(rate), rate_(rate), burst_(std::max(1.0, burst > 0 ? burst : rate / 10)), tokens_(burst_) {}

    // Waits for a token, in short slices so that a cancel ends the wait at once.
    Result<void> acquire(const CancelToken &cancel) {
        for (;;) {
            HSDK_TRYV(cancel.check());
            std::chrono::duration<double> wait{0};
            {
                std::lock_guard lock(mutex_);
                if (rate_ <= 0) return success();
                refill();
                if (tokens_ >= 1) {
                    tokens_ -= 1;
                    return success();
                }
                wait = std::chrono::duration<double>((1 - tokens_) / rate_);
            }
            std::this_thread::sleep_for(std::min<std::chrono::duration<double>>(wait, std::chrono::milliseconds(50)));
        }
    }

    void throttled() {
        std::lock_guard lock(mutex_);
        if (max_rate_ <= 0) return;
        refill();
        rate_ = std::max(max_rate_ / 64, rate_ / 2);
        tokens_ = std::min(tokens_, 1.0);
    }

    void succeeded() {
        std::lock_guard lock(mutex_);
        if (max_rate_ > 0 && rate_ < max_rate_) rate_ = std::min(max_rate_, rate_ + max_rate_ / 200);
    }

    [[nodiscard]] double rate() const {
        std::lock_guard lock(mutex_);
        return rate_;
    }

private:
    void refill() {
        const auto now = std::chrono::steady_clock::now();
        const double elapsed = std::chrono::duration<double>(now - last_).count();
        last_ = now;
        tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    }

    mutable std::mutex mutex_;
    double max_rate_, rate_, burst_, tokens_;
    std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace hypersdk::cloud
