#include <hypersdk/log.hpp>

#include "core/log_context.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace hypersdk {
namespace {

struct LogState {
    std::mutex mutex;
    std::shared_ptr<const LogSink> sink;  // swapped whole, so a running call keeps its copy alive
    std::atomic<int> min_level{static_cast<int>(LogLevel::off)};
};

LogState &state() {
    // Never destroyed, like the executor: a pool thread still logging while the process exits
    // must not find the mutex and the sink already torn down by static destruction.
    static auto *s = new LogState();
    return *s;
}

thread_local std::shared_ptr<const core::LogContext> t_context;

bool global_enabled(LogLevel level) noexcept {
    return level != LogLevel::off && static_cast<int>(level) >= state().min_level.load(std::memory_order_relaxed);
}

}  // namespace

namespace core {

std::shared_ptr<const LogContext> current_log_context() noexcept { return t_context; }

ScopedLogContext::ScopedLogContext(std::shared_ptr<const LogContext> context) noexcept : previous_(std::move(t_context)) {
    t_context = std::move(context);
}

ScopedLogContext::~ScopedLogContext() { t_context = std::move(previous_); }

}  // namespace core

void set_log_sink(LogSink sink, LogLevel min_level) {
    auto &s = state();
    std::lock_guard lock(s.mutex);
    if (sink) {
        s.sink = std::make_shared<const LogSink>(std::move(sink));
        s.min_level.store(static_cast<int>(min_level));
    } else {
        s.sink.reset();
        s.min_level.store(static_cast<int>(LogLevel::off));
    }
}

bool log_enabled(LogLevel level) noexcept {
    if (global_enabled(level)) return true;
    const auto &ctx = t_context;
    return ctx && level != LogLevel::off && static_cast<int>(level) >= static_cast<int>(ctx->min_level);
}

void log(LogLevel level, std::string_view message) {
    const auto &ctx = t_context;
    if (ctx && ctx->sink && level != LogLevel::off && static_cast<int>(level) >= static_cast<int>(ctx->min_level))
        ctx->sink(level, message);
    if (!global_enabled(level)) return;
    std::shared_ptr<const LogSink> sink;
    {
        std::lock_guard lock(state().mutex);
        sink = state().sink;
    }
    if (!sink) return;
    if (ctx && !ctx->tag.empty()) {
        std::string tagged;
        tagged.reserve(ctx->tag.size() + 2 + message.size());
        tagged.append(ctx->tag).append(": ").append(message);
        (*sink)(level, tagged);
    } else {
        (*sink)(level, message);
    }
}

std::string_view log_level_name(LogLevel level) noexcept {
    switch (level) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warning";
    case LogLevel::error: return "error";
    case LogLevel::off: return "off";
    }
    return "unknown";
}

}  // namespace hypersdk
