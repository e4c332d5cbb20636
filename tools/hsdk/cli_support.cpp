#include "cli_support.hpp"

#include "progress_display.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/job.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/ops.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <unistd.h>

namespace hsdk {

int report(const hypersdk::Error &error) { return report_message(error.message); }

int report_message(const std::string &message, int status) {
    end_progress_line();
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
            end_progress_line();
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

// The token of the job the CLI runs, and the signal that cancelled it.
std::atomic<hypersdk::CancelToken *> g_interrupt{nullptr};
std::atomic<int> g_signal{0};
extern "C" void on_interrupt(int sig) {
    g_signal.store(sig);
    if (auto *t = g_interrupt.load()) t->cancel();
}

void handle_interrupts(bool on) {
    struct sigaction sa {};
    sa.sa_handler = on ? on_interrupt : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

// "cannot determine the format of 'PATH' ... (raw is never guessed: ...)": the library's hint, with
// the flag that names that file's format on this command line.
std::string with_format_hint(const std::string &message, const RunOptions &how) {
    for (const auto &[path, flag] : how.format_flags) {
        if (message.find("cannot determine the format of '" + path + "'") == std::string::npos) continue;
        const auto paren = message.find(" (raw is never guessed");
        return message.substr(0, paren) + fmt::format("; raw is never guessed: give '{} raw' to read it as raw data", flag);
    }
    return message;
}

}  // namespace

void add_output_flags(CLI::App *app, bool &json, const std::string &what) {
    app->add_flag("--json", json, "Print JSON: " + what);
    app->add_option_function<std::string>(
           "--output", [&json](const std::string &v) { json = v == "json"; }, "Output format: human (the default) or json, as qemu-img")
        ->check(CLI::IsMember({"human", "json"}))
        ->type_name("FORMAT");
}

bool read_json_argument(const std::string &flag, const std::string &arg, nlohmann::json &out, std::string &error) {
    std::string text = arg;
    if (!arg.empty() && arg[0] == '@') {
        const std::string path = arg.substr(1);
        if (path == "-") {
            text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        } else {
            std::ifstream in(path, std::ios::binary);
            if (!in) {
                error = fmt::format("{}: cannot read '{}'", flag, path);
                return false;
            }
            std::ostringstream ss;
            ss << in.rdbuf();
            text = ss.str();
        }
    }
    out = nlohmann::json::parse(text, nullptr, false);
    if (out.is_discarded()) {
        error = fmt::format("{}: not valid JSON", flag);
        return false;
    }
    return true;
}

RunOptions progress_if(bool on) {
    RunOptions how;
    if (on) how.progress = progress_display();
    return how;
}

int run_op(const std::string &operation, const nlohmann::json &request, nlohmann::json &result, RunOptions how) {
    auto print_json_error = [&how](const hypersdk::Error &e) {
        if (how.json_errors)
            fmt::print("{}\n", nlohmann::json{{"error", {{"code", hypersdk::errc_name(e.code)}, {"message", e.message}}}}.dump(2));
    };
    if (auto prepared = hypersdk::prepare_request(operation, request); !prepared) {
        print_json_error(prepared.error());
        return report_message(prepared.error().message, exit_usage);
    }
    hypersdk::JobCallbacks cb;
    cb.progress = std::move(how.progress);
    hypersdk::CancelToken token = cb.cancel;
    g_signal.store(0);
    g_interrupt.store(&token);
    handle_interrupts(true);
    auto r = hypersdk::run_operation(operation, request, std::move(cb));
    handle_interrupts(false);
    g_interrupt.store(nullptr);
    if (const int sig = g_signal.load(); sig != 0 && !r) {
        // The job has stopped and cleaned up (temporaries removed); say so on a line of its own.
        report_message(fmt::format("{} cancelled by {}", operation, sig == SIGINT ? "SIGINT" : "SIGTERM"));
        return sig == SIGINT ? exit_sigint : exit_sigterm;
    }
    if (!r) {
        print_json_error(r.error());
        return report_message(with_format_hint(r.error().message, how), how.error_status);
    }
    result = std::move(r).value();
    return exit_ok;
}

std::string escape_option_value(const std::string &value) {
    std::string out;
    for (char c : value) {
        out += c;
        if (c == ',') out += ',';
    }
    return out;
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
