#include "progress_display.hpp"

#include "cli_support.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vector>

namespace hsdk {
namespace {

std::mutex g_screen;           // everything written to stderr while a bar may be shown
bool g_bar_on_screen = false;  // under g_screen
std::atomic<bool> g_width_changed{true};
int g_columns = 80;  // under g_screen

extern "C" void on_winch(int) { g_width_changed.store(true); }

int terminal_columns() {
    if (g_width_changed.exchange(false)) {
        winsize ws{};
        g_columns = ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    }
    return g_columns;
}

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

double fraction_of(const hypersdk::ProgressInfo &p) {
    if (p.bytes_total == 0) return p.finished ? 1.0 : 0.0;
    return std::min(1.0, static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total));
}

// Counts what a terminal shows: UTF-8 continuation bytes take no column.
std::size_t columns_of(const std::string &s) {
    return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

}  // namespace

std::string progress_bar_text(const hypersdk::ProgressInfo &p, int columns) {
    const double fraction = fraction_of(p);
    // Parts after the bar, most important first; the line drops them from the end to fit.
    std::vector<std::string> tail = {fmt::format("{:5.1f}%", fraction * 100.0)};
    if (p.bytes_total) tail.push_back(fmt::format("{} / {}", human_size(p.bytes_done), human_size(p.bytes_total)));
    tail.push_back(human_rate(p.rate_bytes_per_sec));
    tail.push_back("ETA " + human_duration(p.eta_seconds));
    std::string phase = p.phase;
    if (!p.current_item.empty() && p.items_total > 1) phase += fmt::format(" ({})", p.current_item);

    const std::size_t width = static_cast<std::size_t>(std::max(columns, 20)) - 1;  // the last column would wrap
    constexpr std::size_t min_bar = 10, max_bar = 40;
    for (;;) {
        std::string after;
        for (const auto &t : tail) after += " " + t;
        // phase + " [" + bar + "]" + after
        const std::size_t fixed = columns_of(phase) + 3 + columns_of(after);
        if (fixed + min_bar <= width || (tail.size() == 1 && phase.empty())) {
            const std::size_t bar_width = std::clamp<std::size_t>(width > fixed ? width - fixed : min_bar, min_bar, max_bar);
            const auto filled = static_cast<std::size_t>(fraction * static_cast<double>(bar_width));
            std::string bar(filled, '=');
            if (filled < bar_width) bar += '>';
            bar.resize(bar_width, ' ');
            std::string line = phase + " [" + bar + "]" + after;
            if (columns_of(line) > width) line.resize(width);
            return line;
        }
        if (tail.size() > 1) {
            tail.pop_back();
        } else {
            // Only the percentage is left: shorten the phase.
            const std::size_t keep = width > min_bar + 3 + columns_of(after) + 1 ? width - min_bar - 3 - columns_of(after) - 1 : 0;
            phase = keep == 0 ? std::string() : phase.substr(0, keep) + "~";
        }
    }
}

std::string progress_plain_text(const hypersdk::ProgressInfo &p) {
    std::string line = fmt::format("{}: {:.1f}%", p.phase, fraction_of(p) * 100.0);
    if (p.bytes_total) line += fmt::format(" ({} of {}", human_size(p.bytes_done), human_size(p.bytes_total));
    else line += fmt::format(" ({}", human_size(p.bytes_done));
    line += fmt::format(", {}, ETA {})", human_rate(p.rate_bytes_per_sec), human_duration(p.eta_seconds));
    return line;
}

void end_progress_line() {
    std::lock_guard lock(g_screen);
    if (g_bar_on_screen) {
        std::fputc('\n', stderr);
        std::fflush(stderr);
        g_bar_on_screen = false;
    }
}

void watch_terminal_width() {
    struct sigaction sa {};
    sa.sa_handler = on_winch;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGWINCH, &sa, nullptr);
}

namespace {

hypersdk::ProgressCallback terminal_bar() {
    watch_terminal_width();
    return [](const hypersdk::ProgressInfo &p) {
        std::lock_guard lock(g_screen);
        const std::string line = progress_bar_text(p, terminal_columns());
        std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
        g_bar_on_screen = true;
        if (p.finished) {
            std::fputc('\n', stderr);
            g_bar_on_screen = false;
        }
        std::fflush(stderr);
        return hypersdk::ProgressAction::proceed;
    };
}

}  // namespace

hypersdk::ProgressCallback progress_display() {
    if (::isatty(STDERR_FILENO)) return terminal_bar();
    struct State {
        std::chrono::steady_clock::time_point last{};
        std::string phase;
    };
    auto state = std::make_shared<State>();
    return [state](const hypersdk::ProgressInfo &p) {
        constexpr auto every = std::chrono::seconds(2);
        const auto now = std::chrono::steady_clock::now();
        const bool new_phase = p.phase != state->phase;
        if (!new_phase && !p.finished && now - state->last < every) return hypersdk::ProgressAction::proceed;
        state->phase = p.phase;
        state->last = now;
        std::lock_guard lock(g_screen);
        std::fprintf(stderr, "hsdk: %s\n", progress_plain_text(p).c_str());
        std::fflush(stderr);
        return hypersdk::ProgressAction::proceed;
    };
}

hypersdk::ProgressCallback phase_display() {
    if (::isatty(STDERR_FILENO)) return terminal_bar();
    auto last_phase = std::make_shared<std::string>();
    return [last_phase](const hypersdk::ProgressInfo &p) {
        if (p.phase != *last_phase) {
            *last_phase = p.phase;
            std::lock_guard lock(g_screen);
            std::fprintf(stderr, "hsdk: %s\n", p.phase.c_str());
        }
        return hypersdk::ProgressAction::proceed;
    };
}

}  // namespace hsdk
