// hyperctl: the command-line client of hypervisord, a stand-in for the Go hyperctl of
// ssahani/hypersdk so hyper2kvm's hyperctl transport works unchanged: status, submit -vm/-output,
// query -id/-all, with the same flags and the lines hyper2kvm reads.
#include "api.hpp"
#include "commands.hpp"
#include "flags.hpp"
#include "http_client.hpp"

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#ifndef HSDK_VERSION
#define HSDK_VERSION "unknown"
#endif

namespace {

int report(const std::string &message, int status) {
    std::string line = "hyperctl: " + message + "\n";
    std::fflush(stdout);
    std::fputs(line.c_str(), stderr);
    return status;
}

int run(const std::vector<std::string> &argv) {
    using namespace hyperctl;

    GlobalOptions global;
    bool show_version = false;
    FlagSet flags("hyperctl");
    add_connection_flags(flags, global);
    flags.add_bool("version", show_version, "Show version");

    std::vector<std::string> rest;
    try {
        rest = flags.parse(argv);
    } catch (const HelpRequested &) {
        std::fputs(usage_text().c_str(), stdout);
        return exit_ok;
    }
    if (show_version) {
        std::printf("hyperctl version %s\n", HSDK_VERSION);
        return exit_ok;
    }
    if (rest.empty()) {
        std::fputs(usage_text().c_str(), stderr);
        return exit_usage;
    }

    const std::string command = rest.front();
    const std::vector<std::string> args(rest.begin() + 1, rest.end());
    if (command == "status") return run_status(args, global);
    if (command == "submit") return run_submit(args, global);
    if (command == "query") return run_query(args, global);
    if (command == "help") {
        std::fputs(usage_text().c_str(), stdout);
        return exit_ok;
    }
    throw UsageError("unknown command: " + command);
}

}  // namespace

int main(int argc, char **argv) {
    using namespace hyperctl;
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const UsageError &e) {
        return report(std::string(e.what()) + " (see hyperctl help)", exit_usage);
    } catch (const TransportError &e) {
        return report(e.what(), exit_error);
    } catch (const ApiError &e) {
        return report(e.what(), exit_error);
    } catch (const CommandError &e) {
        return report(e.what(), exit_error);
    } catch (const std::exception &e) {
        return report(std::string("internal error: ") + e.what(), exit_error);
    }
}
