// `hsdk migrate --warm` (the migrate.warm operation, every step or one at a time) and
// `hsdk batch run` (a plan of many VMs on a Ray cluster, run by the Python package's
// hypersdk.batch, which this command starts with the same flags).
#include "commands.hpp"
#include "progress_display.hpp"
#include "provider_flags.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <unistd.h>

namespace hsdk {
namespace {

using json = nlohmann::json;

// "90", "90s", "15m", "2h" as seconds; false when it is none of those.
bool parse_seconds(const std::string &text, std::uint64_t &out) {
    if (text.empty()) return false;
    std::size_t used = 0;
    unsigned long long n = 0;
    try {
        n = std::stoull(text, &used);
    } catch (...) {
        return false;
    }
    const std::string unit = text.substr(used);
    const unsigned long long scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
    if (scale == 0) return false;
    out = n * scale;
    return true;
}

std::string seconds_text(double s) { return s < 0 ? std::string("unknown") : fmt::format("{:.1f} s", s); }

void print_status(const json &r) {
    fmt::print("warm migration of {}: {}\n", r["vm"].value("name", std::string("?")), r["phase"].get<std::string>());
    for (const auto &d : r["disks"])
        fmt::print("  disk {} ({}): {} -> {}\n", d["disk_id"].get<std::string>(), human_size(d["capacity"].get<std::uint64_t>()),
                   d["change_id"].get<std::string>().empty() ? "not copied yet" : "copied", d["file"].get<std::string>());
    for (const auto &w : r["rounds"])
        fmt::print("  round {} ({}): {} changed, {} read in {:.1f} s ({}/s), dirty rate {}/s, up to {} reads in flight\n",
                   w["round"].get<unsigned>(), w["kind"].get<std::string>(), human_size(w["changed_bytes"].get<std::uint64_t>()),
                   human_size(w["bytes_read"].get<std::uint64_t>()), w["seconds"].get<double>(),
                   human_size(static_cast<std::uint64_t>(w["transfer_rate"].get<double>())),
                   human_size(static_cast<std::uint64_t>(w["dirty_rate"].get<double>())), w["peak_requests_in_flight"].get<unsigned>());
    fmt::print("  predicted downtime {}{}\n", seconds_text(r["predicted_downtime_seconds"].get<double>()),
               r["converged"].get<bool>() ? " (within the budget)" : "");
    if (r["phase"] == "precopy") fmt::print("  next precopy round in {:.0f} s\n", r["next_round_in_seconds"].get<double>());
    if (!r["stopped"].get<std::string>().empty()) fmt::print("  stopped: {}\n", r["stopped"].get<std::string>());
    if (r["measured_downtime_seconds"].is_number())
        fmt::print("  measured downtime {}\n", seconds_text(r["measured_downtime_seconds"].get<double>()));
    for (const auto &f : r["files"]) fmt::print("  {}\n", f.get<std::string>());
}

void register_migrate(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("migrate", "Migrate a VM to KVM while it runs (--warm): precopy rounds of changed blocks, then a short cutover");
    struct Args {
        ProviderFlags provider;
        bool warm = false, force = false, quiesce = false, progress = false, json = false;
        std::string vm, out, format = "qcow2", step = "run", budget = "60s", interval, shutdown_timeout = "300s";
        std::string name, network, bridge;
        unsigned max_rounds = 10, requests = 8;
    };
    auto a = std::make_shared<Args>();
    add_provider_flags(app, a->provider);
    app->add_flag("--warm", a->warm, "Copy while the VM runs (the only kind of migration this command does; required)");
    app->add_option("--vm", a->vm, "The VM: inventory path, name or id");
    app->add_option("--out", a->out, "Output folder: target disks, warm-migration.json (the state), and after the cutover the hand-off")->required();
    app->add_option("--format", a->format, "Target disk format: qcow2 (default) or raw; updated in place between rounds")
        ->check(CLI::IsMember({"qcow2", "raw"}));
    app->add_option("--step", a->step, "One step only: precopy (one round; the initial copy first), cutover, or status (default: every step)")
        ->check(CLI::IsMember({"run", "precopy", "cutover", "status"}));
    app->add_option("--downtime-budget", a->budget, "How long the cutover may take, e.g. 60s, 5m (default 60s)");
    app->add_option("--interval", a->interval, "The longest wait between precopy rounds reported to a scheduler, e.g. 30m");
    app->add_option("--max-rounds", a->max_rounds, "Precopy rounds before giving up on converging (default 10)")->check(CLI::Range(1u, 1000u));
    app->add_option("--shutdown-timeout", a->shutdown_timeout, "How long the guest gets to shut down at the cutover (default 300s)");
    app->add_flag("--force-power-off", a->force, "Power the VM off when the guest does not shut down in time");
    app->add_flag("--quiesce", a->quiesce, "Quiesce the guest for precopy snapshots");
    app->add_option("--requests-in-flight", a->requests, "Changed-range reads in flight per disk (default 8)")->check(CLI::Range(1u, 64u));
    app->add_option("--name", a->name, "libvirt domain name (default: the VM's name)");
    app->add_option("--network", a->network, "libvirt network for every NIC");
    app->add_option("--bridge", a->bridge, "host bridge for every NIC");
    app->add_flag("-p,--progress", a->progress, "Show progress");
    add_output_flags(app, a->json, "the migration's state");
    commands.push_back({app, [a]() {
                            if (!a->warm)
                                return report_message("hsdk migrate copies a running VM: give --warm (a cold copy is hsdk export)", exit_usage);
                            if (a->step != "status" && a->vm.empty()) return report_message("hsdk migrate --warm needs --vm", exit_usage);
                            json request, result;
                            std::string error;
                            if (a->step != "status" && !a->provider.request(request, error)) return report_message(error, exit_usage);
                            std::uint64_t budget = 0, interval = 0, shutdown = 0;
                            if (!parse_seconds(a->budget, budget) || budget == 0)
                                return report_message(fmt::format("--downtime-budget '{}': give seconds, e.g. 60s or 5m", a->budget), exit_usage);
                            if (!a->interval.empty() && !parse_seconds(a->interval, interval))
                                return report_message(fmt::format("--interval '{}': give seconds, e.g. 30m", a->interval), exit_usage);
                            if (!parse_seconds(a->shutdown_timeout, shutdown) || shutdown == 0)
                                return report_message(fmt::format("--shutdown-timeout '{}': give seconds, e.g. 300s", a->shutdown_timeout), exit_usage);
                            if (!a->vm.empty()) request["vm"] = a->vm;
                            request["out"] = a->out;
                            request["format"] = a->format;
                            request["step"] = a->step;
                            request["downtime_budget"] = budget;
                            request["interval"] = interval;
                            request["max_rounds"] = a->max_rounds;
                            request["shutdown_timeout"] = shutdown;
                            request["force_power_off"] = a->force;
                            request["quiesce"] = a->quiesce;
                            request["requests_in_flight"] = a->requests;
                            if (!a->name.empty()) request["name"] = a->name;
                            if (!a->network.empty()) request["network"] = a->network;
                            if (!a->bridge.empty()) request["bridge"] = a->bridge;
                            RunOptions how = progress_if(a->progress);
                            how.json_errors = a->json;
                            if (int st = run_op("migrate.warm", request, result, how); st != exit_ok) return st;
                            if (a->json) fmt::print("{}\n", result.dump(2));
                            else print_status(result);
                            return exit_ok;
                        }});
}

void register_batch(CLI::App &root, std::vector<Command> &commands) {
    auto *batch = root.add_subcommand("batch", "Many VMs at once on a Ray cluster (the Python package's hypersdk.batch)");
    batch->require_subcommand(1);
    auto *run = batch->add_subcommand("run", "Run a migration plan (YAML or JSON): one Ray task per VM, limits per host and datastore, retries");
    struct Args {
        std::string plan, address;
        unsigned per_host = 0, per_datastore = 0, retries = 0;
        bool json = false, retries_set = false;
    };
    auto a = std::make_shared<Args>();
    run->add_option("PLAN", a->plan, "The plan file")->required();
    run->add_option("--ray-address", a->address, "Ray cluster to run on (default: a local one)");
    run->add_option("--max-per-host", a->per_host, "VMs in flight per source host");
    run->add_option("--max-per-datastore", a->per_datastore, "VMs in flight per datastore");
    run->add_option("--retries", a->retries, "Attempts after a failed one, per VM");
    run->add_flag("--json", a->json, "Progress and the result table as JSON lines");
    commands.push_back({run, [a, run]() {
                            // The plan runs in Python (Ray's API is Python's): this command hands over.
                            const char *python = std::getenv("HSDK_PYTHON");
                            std::vector<std::string> args{python != nullptr && *python ? python : "python3", "-m", "hypersdk.batch", "run", a->plan};
                            if (!a->address.empty()) args.insert(args.end(), {"--ray-address", a->address});
                            if (a->per_host) args.insert(args.end(), {"--max-per-host", std::to_string(a->per_host)});
                            if (a->per_datastore) args.insert(args.end(), {"--max-per-datastore", std::to_string(a->per_datastore)});
                            if (run->count("--retries")) args.insert(args.end(), {"--retries", std::to_string(a->retries)});
                            if (a->json) args.push_back("--json");
                            std::vector<char *> argv;
                            for (auto &s : args) argv.push_back(s.data());
                            argv.push_back(nullptr);
                            ::execvp(argv[0], argv.data());
                            return report_message(fmt::format("cannot start {} for hypersdk.batch: {} (install Python 3 and the hypersdk "
                                                              "package: pip install hypersdk ray; or set HSDK_PYTHON)",
                                                              args[0], std::strerror(errno)),
                                                  exit_error);
                        }});
}

}  // namespace

void register_migrate_commands(CLI::App &root, std::vector<Command> &commands) {
    register_migrate(root, commands);
    register_batch(root, commands);
}

}  // namespace hsdk
