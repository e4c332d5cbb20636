// The log context of the running job: log() sends a line to the job's own sink and, tagged with
// the job's id, to the process-wide sink. Set per thread; tasks posted to the executor's pools
// carry the poster's context with them.
#pragma once

#include <hypersdk/log.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace hypersdk::core {

struct LogContext {
    std::string tag;  // prefix for the process-wide sink: "job 1b4e28ba-..."
    LogLevel min_level = LogLevel::info;
    std::function<void(LogLevel, std::string_view)> sink;  // must not throw
};

[[nodiscard]] std::shared_ptr<const LogContext> current_log_context() noexcept;

// Installs a context on this thread for the scope's lifetime (nullptr: none).
class ScopedLogContext {
public:
    explicit ScopedLogContext(std::shared_ptr<const LogContext> context) noexcept;
    ~ScopedLogContext();
    ScopedLogContext(const ScopedLogContext &) = delete;
    ScopedLogContext &operator=(const ScopedLogContext &) = delete;

private:
    std::shared_ptr<const LogContext> previous_;
};

}  // namespace hypersdk::core
