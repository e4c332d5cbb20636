// vSphere commands: `hsdk vms list` and `hsdk export`. The password comes from an environment
// variable or a file (never from the command line, where every user of the machine can read it).
#include "commands.hpp"
#include "progress_display.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/vm.hpp>

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

struct ConnectionFlags {
    std::string url, username, password_env, password_file, ca_file, thumbprint;
    bool insecure = false;
    unsigned retries = 5;

    // The request's "connection": the password is named (a variable, a file), never copied into it.
    nlohmann::json request() const {
        nlohmann::json c{{"max_attempts", retries}};
        if (!url.empty()) c["url"] = url;
        if (!username.empty()) c["username"] = username;
        if (insecure) c["insecure"] = true;
        if (!ca_file.empty()) c["ca_file"] = ca_file;
        if (!thumbprint.empty()) c["thumbprint"] = thumbprint;
        if (!password_env.empty()) c["password_env"] = password_env;
        else if (!password_file.empty()) c["password_file"] = password_file;
        return c;
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
    add_output_flags(app, a->json, "the VM model");
    commands.push_back({app, [a]() {
                            nlohmann::json result;
                            if (int st = run_op("vsphere.vms.list", {{"connection", a->conn.request()}}, result); st != exit_ok) return st;
                            if (a->json) {
                                fmt::print("{}\n", result["vms"].dump(2));
                                return exit_ok;
                            }
                            std::vector<hypersdk::VirtualMachine> list;
                            for (const auto &j : result["vms"]) {
                                auto vm = hypersdk::vm_from_json(j);
                                if (!vm) return report(vm.error());
                                list.push_back(std::move(vm).value());
                            }
            for (const auto &vm : list) {
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
                            std::string options, error;
                            if (!join_format_options(a->options, options, error)) return report_message(error, exit_usage);
                            nlohmann::json request{{"connection", a->conn.request()}, {"vm", a->vm},         {"output_dir", a->out},
                                                   {"format", a->format},             {"resume", a->resume}, {"quiesce", a->quiesce},
                                                   {"overwrite", a->overwrite},       {"parallel", a->parallel},
                                                   {"compress", a->compress},         {"threads", a->threads},
                                                   {"transport", a->transport}};
                            if (!options.empty()) request["options"] = options;
                            nlohmann::json res;
                            if (int st = run_op("export.run", request, res, progress_if(a->progress)); st != exit_ok) return st;
                            const auto resumed = res["bytes_resumed"].get<std::uint64_t>();
                            fmt::print("exported {} ({}{}) in {:.1f} s: {} received{}\n", res["vm"]["inventory_path"].get<std::string>(),
                                       res["method"].get<std::string>(), res["snapshot_used"].get<bool>() ? ", from a temporary snapshot" : "",
                                       res["seconds"].get<double>(), human_bytes(res["bytes_received"].get<std::uint64_t>()),
                                       resumed ? fmt::format(", {} resumed", human_bytes(resumed)) : "");
                            for (const auto &f : res["files"]) fmt::print("{}\n", f.get<std::string>());
                            return exit_ok;
                        }});
}

}  // namespace

void register_vsphere_commands(CLI::App &root, std::vector<Command> &commands) {
    register_vms(root, commands);
    register_export(root, commands);
}

}  // namespace hsdk
