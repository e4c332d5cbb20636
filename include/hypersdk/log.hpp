// Logging: silent until the host installs a sink.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace hypersdk {

enum class LogLevel { trace = 0, debug = 1, info = 2, warn = 3, error = 4, off = 5 };

using LogSink = std::function<void(LogLevel, std::string_view message)>;

// Process-wide; pass an empty sink to silence. Sinks may be called from any thread.
void set_log_sink(LogSink sink, LogLevel min_level = LogLevel::info);
[[nodiscard]] bool log_enabled(LogLevel level) noexcept;
void log(LogLevel level, std::string_view message);
std::string_view log_level_name(LogLevel level) noexcept;

}  // namespace hypersdk
