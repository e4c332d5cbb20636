// hsdk: the command-line face of libhypersdk. A client of the public C++ API like any other.
#include "cli_support.hpp"
#include "artifact_flags.hpp"
#include "commands.hpp"

#include <hypersdk/version.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <exception>

int main(int argc, char **argv) {
    CLI::App app{"hsdk - export VMs from vSphere, convert virtual disks, write OVF/OVA and KVM domains", "hsdk"};
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
        std::vector<std::string> storage;
        std::vector<char *> args;
        hsdk::normalise_compress_argument(argc, argv, storage, args);
        app.parse(argc, args.data());
    } catch (const CLI::CallForHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion &e) {
        return app.exit(e);
    } catch (const CLI::ParseError &e) {
        // Name the help of the subcommand the mistake was made in.
        std::string help = "hsdk";
        for (const CLI::App *sub = &app;;) {
            const auto parsed = sub->get_subcommands();
            if (parsed.empty()) break;
            sub = parsed.front();
            help += " " + sub->get_name();
        }
        return hsdk::report_message(e.what() + fmt::format(" (see {} --help)", help), hsdk::exit_usage);
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
