// Where hyperctl finds hypervisord, and the flag handling every command shares.
#include "commands.hpp"

#include <cstdio>
#include <cstdlib>

namespace hyperctl {

namespace {

constexpr const char *default_daemon_url = "http://localhost:8080";

std::string from_environment(const char *name) {
    const char *value = std::getenv(name);
    return value ? value : "";
}

}  // namespace

void add_connection_flags(FlagSet &flags, GlobalOptions &global) {
    flags.add_string("daemon", global.daemon, "Daemon URL (default $HYPERVISORD_URL, else http://localhost:8080)", "url");
    flags.add_string("api-key", global.api_key, "API key sent as X-API-Key (default $HYPERSDK_API_KEY)", "key");
}

DaemonClient connect(const GlobalOptions &global) {
    std::string url = global.daemon;
    if (url.empty()) url = from_environment("HYPERVISORD_URL");
    if (url.empty()) url = default_daemon_url;
    std::string key = global.api_key;
    if (key.empty()) key = from_environment("HYPERSDK_API_KEY");
    return DaemonClient(url, key);
}

bool parse_command_flags(FlagSet &flags, const std::vector<std::string> &args, const std::string &synopsis) {
    std::vector<std::string> rest;
    try {
        rest = flags.parse(args);
    } catch (const HelpRequested &) {
        std::string text = "Usage: " + synopsis + "\n\nFlags:\n" + flags.describe();
        std::fputs(text.c_str(), stdout);
        return false;
    }
    if (!rest.empty()) throw UsageError("unexpected argument to " + flags.name() + ": " + rest.front());
    return true;
}

std::string usage_text() {
    return "hyperctl - control hypervisord, the hypersdk daemon\n"
           "\n"
           "Usage: hyperctl [-daemon URL] [-api-key KEY] COMMAND [flags]\n"
           "\n"
           "Commands:\n"
           "  status                           Show daemon status\n"
           "  submit -vm PATH [-output DIR]    Submit an export job for one VM\n"
           "  submit -file JOBS.yaml|.json     Submit the jobs of a file\n"
           "  query -all                       List all jobs\n"
           "  query -id ID[,ID...]             Show the given jobs\n"
           "  query -status running[,...]      List the jobs in these states\n"
           "  help                             This text\n"
           "\n"
           "Every command also takes -daemon URL and -api-key KEY. Defaults: $HYPERVISORD_URL, else\n"
           "http://localhost:8080; $HYPERSDK_API_KEY. Flags are Go style: -vm PATH, -vm=PATH, --vm PATH.\n"
           "\n"
           "Examples:\n"
           "  hyperctl submit -vm /DC/vm/test-vm -output /tmp/export\n"
           "  hyperctl query -all\n"
           "  hyperctl query -id abc123\n"
           "  hyperctl query -status running\n"
           "  hyperctl status\n";
}

}  // namespace hyperctl
