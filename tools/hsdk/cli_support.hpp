// Shared plumbing for hsdk subcommands: exit codes, error printing, logging, progress, and running
// an operation of the library's registry (every subcommand is a request to one).
#pragma once

#include <hypersdk/error.hpp>
#include <hypersdk/progress.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <utility>
#include <string>
#include <vector>

namespace hsdk {

// Exit statuses, as qemu-img and most Unix tools use them.
inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_usage = 2;
// After SIGINT / SIGTERM, once the job has cleaned up: 128 + the signal, as shells report it.
inline constexpr int exit_sigint = 130;
inline constexpr int exit_sigterm = 143;

// Prints "hsdk: <message>" on stderr (on a line of its own) and returns exit_error.
int report(const hypersdk::Error &error);
int report_message(const std::string &message, int status = exit_error);

// Verbosity from -v / -q, applied before a command runs.
void configure_logging(int verbosity, bool quiet);

// --json and --output=human|json (qemu-img's spelling) on a subcommand, both setting `json`.
void add_output_flags(CLI::App *app, bool &json, const std::string &what);

// How run_op runs an operation.
struct RunOptions {
    hypersdk::ProgressCallback progress;  // progress_display() for -p
    int error_status = exit_error;         // the exit status of a failure
    // Image paths of the request and the flag that names each one's format (-f, -F): a failure to
    // tell a file's format then says which flag to give.
    std::vector<std::pair<std::string, std::string>> format_flags;
    // Also print a failure as {"error": {"code", "message"}} on standard output (--json), so that
    // scripts can tell not_found from auth_failed without parsing messages.
    bool json_errors = false;
};

// A JSON argument: the text itself, @FILE, or @- for standard input; `flag` names it in `error`.
bool read_json_argument(const std::string &flag, const std::string &arg, nlohmann::json &out, std::string &error);

// RunOptions showing progress (-p) or not.
RunOptions progress_if(bool on);

// Runs `operation` with `request` as a job: a request the schema refuses exits exit_usage, a failure
// prints its message and returns `error_status`; SIGINT and SIGTERM cancel the job, and once it has
// cleaned up the status is 130 or 143.
int run_op(const std::string &operation, const nlohmann::json &request, nlohmann::json &result, RunOptions how = {});

// Parses each -o text ("key=value,...") and joins them into one; a malformed one is a usage error.
bool join_format_options(const std::vector<std::string> &texts, std::string &joined, std::string &error);
// A value for -o text: a literal comma doubled, as qemu-img reads it.
std::string escape_option_value(const std::string &value);

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
