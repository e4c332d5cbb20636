// Shared plumbing for hsdk subcommands: exit codes, error printing, logging, progress bar.
#pragma once

#include <hypersdk/error.hpp>
#include <hypersdk/progress.hpp>

#include <CLI/CLI.hpp>

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

// Each subcommand registers itself on the app and sets `run` to what executes it.
struct Command {
    CLI::App *app = nullptr;
    std::function<int()> run;
};

using CommandRegistrar = void (*)(CLI::App &root, std::vector<Command> &commands);

}  // namespace hsdk
