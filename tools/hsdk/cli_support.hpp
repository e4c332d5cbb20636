// Shared plumbing for hsdk subcommands: exit codes, error printing, logging, progress, and running
// an operation of the library's registry (every subcommand is a request to one).
#pragma once

#include <hypersdk/error.hpp>
#include <hypersdk/progress.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace hsdk {

// Exit statuses, as qemu-img and most Unix tools use them.
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_usage = 2;

// Prints "hsdk: <message>" on stderr and returns exit_error.
int report(const hypersdk::Error &error);
int report_message(const std::string &message, int status = exit_error);

// Verbosity from -v / -q, applied before a command runs.
void configure_logging(int verbosity, bool quiet);

// A callback that draws "phase [=====>   ] 42% 120.5 MB/s ETA 0:12" on stderr when it is a terminal.
hypersdk::ProgressCallback terminal_progress_bar();
// The bar on a terminal; elsewhere one "hsdk: <phase>" line per phase (logs and tests follow along).
hypersdk::ProgressCallback phase_progress();

// Runs `operation` with `request` as a job: a request the schema refuses exits exit_usage, a failure
// prints its message and returns `error_status`; Ctrl-C and SIGTERM cancel the job cleanly.
int run_op(const std::string &operation, const nlohmann::json &request, nlohmann::json &result,
           hypersdk::ProgressCallback progress = {}, int error_status = exit_error);

// Parses each -o text ("key=value,...") and joins them into one; a malformed one is a usage error.
bool join_format_options(const std::vector<std::string> &texts, std::string &joined, std::string &error);

// "12 KiB", "1.5 GiB".
std::string human_size(std::uint64_t bytes);

// Prints a JSON object as indented "key: value" lines (qemu-img info's format-specific style).
void print_tree(const nlohmann::json &j, int indent);

// Each subcommand registers itself on the app and sets `run` to what executes it.
struct Command {
    CLI::App *app = nullptr;
    std::function<int()> run;
};

using CommandRegistrar = void (*)(CLI::App &root, std::vector<Command> &commands);

}  // namespace hsdk
