// hsdk: the command-line face of libhypersdk. A client of the public C++ API like any other.
#include "cli_support.hpp"
#include "commands.hpp"

#include <hypersdk/version.hpp>

#include <cstdio>
#include <exception>

int main(int argc, char **argv) {
    CLI::App app{"hsdk - export VMs, keep changed-block backups and convert virtual disks", "hsdk"};
    app.set_version_flag("-V,--version", std::string("hsdk ") + std::string(hypersdk::version()));
    app.require_subcommand(1);
    app.fallthrough();
    int verbosity = 0;
    bool quiet = false;
    app.add_flag("-v,--verbose", verbosity, "More log output on stderr (repeat for more)");
    app.add_flag("-q,--quiet", quiet, "Only errors on stderr");

    std::vector<hsdk::Command> commands;
    for (auto registrar : hsdk::all_commands()) registrar(app, commands);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion &e) {
        return app.exit(e);
    } catch (const CLI::ParseError &e) {
        return hsdk::report_message(e.what() + std::string(" (see hsdk --help)"), hsdk::exit_usage);
    }

    hsdk::configure_logging(verbosity, quiet);
    for (auto &cmd : commands) {
        if (cmd.app->parsed()) {
            try {
                return cmd.run();
            } catch (const std::exception &e) {
                return hsdk::report_message(std::string("internal error: ") + e.what());
            }
        }
    }
    return hsdk::report_message("no command given (see hsdk --help)", hsdk::exit_usage);
}
