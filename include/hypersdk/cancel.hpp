// A cancellation token shared between the host and running work.
#pragma once

#include <hypersdk/error.hpp>

#include <atomic>
#include <memory>

namespace hypersdk {

// Copies share one flag. Cancelling is sticky and safe from any thread.
class CancelToken {
public:
    CancelToken() : state_(std::make_shared<std::atomic<bool>>(false)) {}

    void cancel() const noexcept { state_->store(true, std::memory_order_relaxed); }
    [[nodiscard]] bool is_cancelled() const noexcept { return state_->load(std::memory_order_relaxed); }

    // Errc::cancelled once cancelled: `HSDK_TRYV(token.check());` at every unit of work.
    [[nodiscard]] Result<void> check() const {
        if (is_cancelled()) return fail(Errc::cancelled, "operation cancelled");
        return success();
    }

private:
    std::shared_ptr<std::atomic<bool>> state_;
};

}  // namespace hypersdk
