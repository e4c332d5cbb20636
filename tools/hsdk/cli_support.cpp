#include "cli_support.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <unistd.h>

namespace hsdk {

int report(const hypersdk::Error &error) { return report_message(error.message); }

int report_message(const std::string &message, int status) {
    std::fprintf(stderr, "hsdk: %s\n", message.c_str());
    return status;
}

void configure_logging(int verbosity, bool quiet) {
    using hypersdk::LogLevel;
    LogLevel level = LogLevel::warn;
    if (quiet) level = LogLevel::error;
    if (verbosity == 1) level = LogLevel::info;
    if (verbosity == 2) level = LogLevel::debug;
    if (verbosity >= 3) level = LogLevel::trace;
    hypersdk::set_log_sink(
        [](LogLevel lvl, std::string_view message) {
            std::fprintf(stderr, "hsdk: %.*s: %.*s\n", static_cast<int>(hypersdk::log_level_name(lvl).size()),
                         hypersdk::log_level_name(lvl).data(), static_cast<int>(message.size()), message.data());
        },
        level);
}

namespace {

std::string human_rate(double bytes_per_sec) {
    if (bytes_per_sec >= 1e9) return fmt::format("{:.2f} GB/s", bytes_per_sec / 1e9);
    if (bytes_per_sec >= 1e6) return fmt::format("{:.1f} MB/s", bytes_per_sec / 1e6);
    return fmt::format("{:.0f} kB/s", bytes_per_sec / 1e3);
}

std::string human_duration(double seconds) {
    if (seconds < 0 || !std::isfinite(seconds)) return "--:--";
    const auto s = static_cast<long long>(seconds + 0.5);
    if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
    return fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace

hypersdk::ProgressCallback terminal_progress_bar() {
    if (!::isatty(STDERR_FILENO)) return {};
    return [](const hypersdk::ProgressInfo &p) {
        constexpr int width = 30;
        const double fraction = p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 0.0;
        const int filled = static_cast<int>(fraction * width);
        std::string bar(static_cast<std::size_t>(filled), '=');
        if (filled < width) bar += '>';
        bar.resize(width, ' ');
        std::fprintf(stderr, "\r%s [%s] %5.1f%% %s ETA %s\x1b[K", p.phase.c_str(), bar.c_str(), fraction * 100.0,
                     human_rate(p.rate_bytes_per_sec).c_str(), human_duration(p.eta_seconds).c_str());
        if (p.finished) std::fputc('\n', stderr);
        std::fflush(stderr);
        return hypersdk::ProgressAction::proceed;
    };
}

}  // namespace hsdk
