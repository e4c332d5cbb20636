// hyperctl's subcommands. Each takes the arguments after its name and returns the exit status;
// failures are thrown (UsageError, TransportError, ApiError, CommandError) and reported by main.
#pragma once

#include "flags.hpp"
#include "http_client.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace hyperctl {

inline constexpr int exit_ok = 0;
inline constexpr int exit_error = 1;
inline constexpr int exit_usage = 2;

// A failure a command has already explained in one sentence (exit status 1).
class CommandError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Where the daemon is and how to authenticate, from -daemon / -api-key given before or after the
// command; empty when not given.
struct GlobalOptions {
    std::string daemon;
    std::string api_key;
};

// -daemon and -api-key on a command's flag set.
void add_connection_flags(FlagSet &flags, GlobalOptions &global);

// The client for -daemon, else $HYPERVISORD_URL, else http://localhost:8080; the API key from
// -api-key, else $HYPERSDK_API_KEY.
DaemonClient connect(const GlobalOptions &global);

// Parses a command's flags; false when -h/-help printed the command's usage instead. Arguments
// left after the flags are a UsageError.
bool parse_command_flags(FlagSet &flags, const std::vector<std::string> &args, const std::string &synopsis);

// The overview "hyperctl help" prints.
std::string usage_text();

int run_status(const std::vector<std::string> &args, GlobalOptions &global);
int run_submit(const std::vector<std::string> &args, GlobalOptions &global);
int run_query(const std::vector<std::string> &args, GlobalOptions &global);

}  // namespace hyperctl
