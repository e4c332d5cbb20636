// vSphere commands: `hsdk vms list` and `hsdk export`. The password comes from an environment
// variable or a file (never from the command line, where every user of the machine can read it).
#include "commands.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/vsphere.hpp>

#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <unistd.h>

namespace hsdk {
namespace {

struct ConnectionFlags {
    std::string url, username, password_env, password_file, ca_file, thumbprint;
    bool insecure = false;
    unsigned retries = 5;

    hypersdk::Result<hypersdk::vsphere::ConnectionOptions> options() const {
        hypersdk::vsphere::ConnectionOptions o;
        o.url = url;
        o.username = username;
        o.insecure = insecure;
        o.ca_file = ca_file;
        o.thumbprint = thumbprint;
        o.max_attempts = retries;
        if (!password_env.empty()) {
            const char *v = std::getenv(password_env.c_str());
            if (v == nullptr) return hypersdk::fail(hypersdk::Errc::invalid_argument, fmt::format("--password-env: ${} is not set", password_env));
            o.password = v;
        } else if (!password_file.empty()) {
            std::ifstream in(password_file);
            if (!in) return hypersdk::fail(hypersdk::Errc::not_found, fmt::format("--password-file: cannot read '{}'", password_file));
            std::getline(in, o.password);  // first line; a trailing newline is not part of it
            if (!o.password.empty() && o.password.back() == '\r') o.password.pop_back();
        }
        return hypersdk::vsphere::with_environment(std::move(o));
    }
};

void add_connection_flags(CLI::App *app, ConnectionFlags &f) {
    app->add_option("--url", f.url, "vCenter or ESXi: https://host[/sdk] (default: $GOVC_URL)");
    app->add_option("--username,-u", f.username, "User name (default: $GOVC_USERNAME)");
    auto *env = app->add_option("--password-env", f.password_env, "Read the password from this environment variable (default: $GOVC_PASSWORD)");
    auto *file = app->add_option("--password-file", f.password_file, "Read the password from the first line of this file");
    env->excludes(file);
    auto *insecure = app->add_flag("--insecure,-k", f.insecure, "Do not verify the server certificate (default: $GOVC_INSECURE)");
    auto *ca = app->add_option("--ca-file", f.ca_file, "Trust the certificates in this PEM file instead of the system store");
    auto *thumb = app->add_option("--thumbprint", f.thumbprint, "Accept only the server certificate with this SHA-256 thumbprint");
    insecure->excludes(ca)->excludes(thumb);
    app->add_option("--retries", f.retries, "Tries per request on transient failures (reset, 5xx, timeout), default 5")
        ->check(CLI::Range(1u, 100u));
}

hypersdk::CancelToken *g_token = nullptr;
extern "C" void on_signal(int) {
    if (g_token) g_token->cancel();
}

std::string human_bytes(std::uint64_t b) {
    static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        ++i;
    }
    return i == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, u[i]);
}

void register_vms(CLI::App &root, std::vector<Command> &commands) {
    auto *vms = root.add_subcommand("vms", "Virtual machines on a vSphere server");
    vms->require_subcommand(1);
    auto *app = vms->add_subcommand("list", "List VMs with inventory path, power state, guest, CPUs, memory, firmware, disks and NICs");
    struct Args {
        ConnectionFlags conn;
        bool json = false;
    };
    auto a = std::make_shared<Args>();
    add_connection_flags(app, a->conn);
    app->add_flag("--json", a->json, "Print the VM model as JSON");
    commands.push_back({app, [a]() {
                            auto o = a->conn.options();
                            if (!o) return report(o.error());
                            auto list = hypersdk::vsphere::list_vms(o.value());
                            if (!list) return report(list.error());
                            if (a->json) {
                                nlohmann::json j = nlohmann::json::array();
                                for (const auto &vm : list.value()) j.push_back(hypersdk::to_json(vm));
                                fmt::print("{}\n", j.dump(2));
                                return exit_ok;
                            }
                            for (const auto &vm : list.value()) {
                                fmt::print("{}\n", vm.inventory_path);
                                fmt::print("  power: {}  guest: {}  cpus: {} ({} per socket)  memory: {} MiB  firmware: {}{}\n",
                                           vm.power_state, vm.guest_id, vm.cpus, vm.cores_per_socket, vm.memory_mib,
                                           hypersdk::firmware_name(vm.firmware), vm.secure_boot ? " (secure boot)" : "");
                                for (const auto &d : vm.disks)
                                    fmt::print("  disk {}: {} {} on {}{}:{} {}{}\n", d.id, human_bytes(d.capacity_bytes),
                                               d.label, d.controller.empty() ? "?" : d.controller, d.controller_bus, d.unit,
                                               d.backing_file, d.change_id.empty() ? "" : " changeId=" + d.change_id);
                                for (const auto &n : vm.nics)
                                    fmt::print("  nic {}: {} {} on '{}'{}\n", n.id, n.adapter_type, n.mac, n.network,
                                               n.connected ? "" : " (disconnected)");
                            }
                            return exit_ok;
                        }});
}

// -p: a bar on a terminal; elsewhere one line per phase (logs and tests can follow along).
hypersdk::ExportProgressCallback export_progress() {
    auto bar = terminal_progress_bar();
    auto last_phase = std::make_shared<std::string>();
    return [bar, last_phase](const hypersdk::ExportProgress &p) {
        if (bar) {
            hypersdk::ProgressInfo info;
            info.phase = p.phase;
            info.bytes_done = p.bytes_done;
            info.bytes_total = p.bytes_total;
            info.rate_bytes_per_sec = p.rate_bytes_per_sec;
            info.eta_seconds = p.eta_seconds;
            return bar(info);
        }
        if (p.phase != *last_phase) {
            *last_phase = p.phase;
            fmt::print(stderr, "hsdk: {}\n", p.phase);
        }
        return hypersdk::ProgressAction::proceed;
    };
}

void register_export(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("export", "Export a VM from vSphere to OVF/OVA or straight to a disk format");
    struct Args {
        ConnectionFlags conn;
        std::string vm, out, format = "ova", transport = "auto";
        bool resume = false, progress = false, quiesce = false, overwrite = false, compress = false;
        unsigned parallel = 1, threads = 0;
        std::vector<std::string> options;
    };
    auto a = std::make_shared<Args>();
    add_connection_flags(app, a->conn);
    app->add_option("--vm", a->vm, "Inventory path of the VM, e.g. /DC0/vm/DC0_H0_VM0")->required();
    app->add_option("--out", a->out, "Output folder (created if missing)")->required();
    app->add_option("--format", a->format, "ova, ovf, qcow2, raw, vmdk, vhd, vhdx or vdi (default ova)")
        ->check(CLI::IsMember(hypersdk::export_formats()));
    app->add_flag("--resume", a->resume, "Continue an interrupted export from the state files in the output folder");
    app->add_flag("-p,--progress", a->progress, "Show progress");
    app->add_flag("--quiesce", a->quiesce, "Quiesce the guest file systems for the snapshot of a running VM");
    app->add_flag("--overwrite", a->overwrite, "Replace existing output files");
    app->add_option("--parallel", a->parallel, "Disks to download at once (default 1)")->check(CLI::Range(1u, 16u));
    app->add_option("-o,--options", a->options, "Options of the disk format, key=value[,...] (as for hsdk convert)");
    app->add_flag("-c,--compress", a->compress, "Compress the disks where the format can (qcow2)");
    app->add_option("--threads", a->threads, "Conversion workers per disk (default: one per core)");
    app->add_option("--transport", a->transport, "auto (NFC lease, datastore if the server cannot export), nfc or datastore")
        ->check(CLI::IsMember({"auto", "nfc", "datastore"}));
    commands.push_back({app, [a]() {
                            auto conn = a->conn.options();
                            if (!conn) return report(conn.error());
                            hypersdk::ExportOptions o;
                            o.connection = std::move(conn).value();
                            o.vm = a->vm;
                            o.output_dir = a->out;
                            o.format = a->format;
                            o.resume = a->resume;
                            o.quiesce = a->quiesce;
                            o.overwrite = a->overwrite;
                            o.parallel = a->parallel;
                            o.compress = a->compress;
                            o.threads = a->threads;
                            for (const auto &text : a->options) {
                                auto parsed = hypersdk::parse_format_options(text);
                                if (!parsed) return report_message(parsed.error().message, exit_usage);
                                o.format_options.insert(o.format_options.end(), parsed.value().begin(), parsed.value().end());
                            }
                            o.transport = a->transport == "nfc"         ? hypersdk::ExportTransport::nfc
                                          : a->transport == "datastore" ? hypersdk::ExportTransport::datastore
                                                                        : hypersdk::ExportTransport::automatic;
                            if (a->progress) o.progress = export_progress();
                            hypersdk::ExportSession session(o);
                            hypersdk::CancelToken token = o.cancel;
                            g_token = &token;
                            std::signal(SIGINT, on_signal);
                            std::signal(SIGTERM, on_signal);
                            auto r = session.run();
                            std::signal(SIGINT, SIG_DFL);
                            std::signal(SIGTERM, SIG_DFL);
                            g_token = nullptr;
                            if (!r) return report(r.error());
                            const auto &res = r.value();
                            fmt::print("exported {} ({}{}) in {:.1f} s: {} received{}\n", res.vm.inventory_path, res.method,
                                       res.snapshot_used ? ", from a temporary snapshot" : "", res.seconds,
                                       human_bytes(res.bytes_received),
                                       res.bytes_resumed ? fmt::format(", {} resumed", human_bytes(res.bytes_resumed)) : "");
                            for (const auto &f : res.files) fmt::print("{}\n", f);
                            return exit_ok;
                        }});
}

}  // namespace

void register_vsphere_commands(CLI::App &root, std::vector<Command> &commands) {
    register_vms(root, commands);
    register_export(root, commands);
}

}  // namespace hsdk
