#include "cli_support.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/job.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/ops.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <memory>
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

std::string human_size(std::uint64_t bytes) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    if (u == 0) return fmt::format("{} B", bytes);
    return fmt::format("{:.3g} {}", v, units[u]);
}

void print_tree(const nlohmann::json &j, int indent) {
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string pad(static_cast<std::size_t>(indent), ' ');
        if (it.value().is_object()) {
            fmt::print("{}{}:\n", pad, it.key());
            print_tree(it.value(), indent + 4);
        } else if (it.value().is_array()) {
            fmt::print("{}{}:\n", pad, it.key());
            for (const auto &item : it.value()) {
                if (item.is_object()) {
                    fmt::print("{}    [\n", pad);
                    print_tree(item, indent + 8);
                    fmt::print("{}    ]\n", pad);
                } else {
                    fmt::print("{}    {}\n", pad, item.is_string() ? item.get<std::string>() : item.dump());
                }
            }
        } else {
            fmt::print("{}{}: {}\n", pad, it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
        }
    }
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

// The token of the job the CLI runs, for Ctrl-C.
std::atomic<hypersdk::CancelToken *> g_interrupt{nullptr};
extern "C" void on_interrupt(int) {
    if (auto *t = g_interrupt.load()) t->cancel();
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

hypersdk::ProgressCallback phase_progress() {
    if (auto bar = terminal_progress_bar()) return bar;
    auto last_phase = std::make_shared<std::string>();
    return [last_phase](const hypersdk::ProgressInfo &p) {
        if (p.phase != *last_phase) {
            *last_phase = p.phase;
            fmt::print(stderr, "hsdk: {}\n", p.phase);
        }
        return hypersdk::ProgressAction::proceed;
    };
}

int run_op(const std::string &operation, const nlohmann::json &request, nlohmann::json &result, hypersdk::ProgressCallback progress,
           int error_status) {
    if (auto prepared = hypersdk::prepare_request(operation, request); !prepared)
        return report_message(prepared.error().message, exit_usage);
    hypersdk::JobCallbacks cb;
    cb.progress = std::move(progress);
    hypersdk::CancelToken token = cb.cancel;
    g_interrupt.store(&token);
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    auto r = hypersdk::run_operation(operation, request, std::move(cb));
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    g_interrupt.store(nullptr);
    if (!r) return report_message(r.error().message, error_status);
    result = std::move(r).value();
    return exit_ok;
}

bool join_format_options(const std::vector<std::string> &texts, std::string &joined, std::string &error) {
    joined.clear();
    for (const auto &text : texts) {
        if (auto parsed = hypersdk::parse_format_options(text); !parsed) {
            error = parsed.error().message;
            return false;
        }
        if (text.empty()) continue;
        if (!joined.empty()) joined += ',';
        joined += text;
    }
    return true;
}

}  // namespace hsdk
