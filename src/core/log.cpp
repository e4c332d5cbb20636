#include <hypersdk/log.hpp>

#include <atomic>
#include <memory>
#include <mutex>

namespace hypersdk {
namespace {

struct LogState {
    std::mutex mutex;
    std::shared_ptr<const LogSink> sink;  // swapped whole, so a running call keeps its copy alive
    std::atomic<int> min_level{static_cast<int>(LogLevel::off)};
};

LogState &state() {
    static LogState s;
    return s;
}

}  // namespace

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
    return level != LogLevel::off && static_cast<int>(level) >= state().min_level.load(std::memory_order_relaxed);
}

void log(LogLevel level, std::string_view message) {
    if (!log_enabled(level)) return;
    std::shared_ptr<const LogSink> sink;
    {
        std::lock_guard lock(state().mutex);
        sink = state().sink;
    }
    if (sink) (*sink)(level, message);
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
