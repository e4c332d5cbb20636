// Provider commands: `hsdk providers`, `hsdk vms list|describe` (any provider) and `hsdk export` (vSphere). The password comes from an environment
// variable or a file (never from the command line, where every user of the machine can read it).
#include "artifact_flags.hpp"
#include "commands.hpp"
#include "provider_flags.hpp"
#include "progress_display.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/vm.hpp>

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

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

void print_vm(const hypersdk::VirtualMachine &vm) {
    fmt::print("{}\n", vm.inventory_path.empty() ? vm.name : vm.inventory_path);
    fmt::print("  power: {}  guest: {}  cpus: {} ({} per socket)  memory: {} MiB  firmware: {}{}\n", vm.power_state, vm.guest_id,
               vm.cpus, vm.cores_per_socket, vm.memory_mib, hypersdk::firmware_name(vm.firmware),
               vm.secure_boot ? " (secure boot)" : "");
    for (const auto &d : vm.disks)
        fmt::print("  disk {}: {} {} on {}{}:{} {}{}\n", d.id, human_bytes(d.capacity_bytes), d.label,
                   d.controller.empty() ? "?" : d.controller, d.controller_bus, d.unit, d.backing_file.empty() ? d.file : d.backing_file,
                   d.change_id.empty() ? "" : " changeId=" + d.change_id);
    for (const auto &n : vm.nics)
        fmt::print("  nic {}: {} {} on '{}'{}\n", n.id, n.adapter_type, n.mac, n.network, n.connected ? "" : " (disconnected)");
}

void register_snapshots(CLI::App &vms, std::vector<Command> &commands);

void register_vms(CLI::App &root, std::vector<Command> &commands) {
    auto *vms = root.add_subcommand("vms", "Virtual machines of a provider (vSphere by default)");
    vms->require_subcommand(1);
    auto *app = vms->add_subcommand("list", "List VMs with inventory path, power state, guest, CPUs, memory, firmware, disks and NICs");
    struct Args {
        ProviderFlags provider;
        std::string name_contains;
        bool json = false;
    };
    auto a = std::make_shared<Args>();
    add_provider_flags(app, a->provider);
    app->add_option("--name-contains", a->name_contains, "Only VMs whose name or inventory path contains this");
    add_output_flags(app, a->json, "the VM model");
    commands.push_back({app, [a]() {
                            nlohmann::json request, result;
                            std::string error;
                            if (!a->provider.request(request, error)) return report_message(error, exit_usage);
                            if (!a->name_contains.empty()) request["name_contains"] = a->name_contains;
                            if (int st = run_op("vms.list", request, result); st != exit_ok) return st;
                            if (a->json) {
                                fmt::print("{}\n", result["vms"].dump(2));
                                return exit_ok;
                            }
                            for (const auto &j : result["vms"]) {
                                auto vm = hypersdk::vm_from_json(j);
                                if (!vm) return report(vm.error());
                                print_vm(vm.value());
                            }
                            return exit_ok;
                        }});

    auto *describe = vms->add_subcommand("describe", "Describe one VM: hardware, firmware, disks and NICs");
    struct DescribeArgs {
        ProviderFlags provider;
        std::string vm;
        bool json = false;
    };
    auto d = std::make_shared<DescribeArgs>();
    add_provider_flags(describe, d->provider);
    describe->add_option("--vm", d->vm, "The VM: inventory path, name or id as the provider knows it")->required();
    add_output_flags(describe, d->json, "the VM model");
    commands.push_back({describe, [d]() {
                            nlohmann::json request, result;
                            std::string error;
                            if (!d->provider.request(request, error)) return report_message(error, exit_usage);
                            request["vm"] = d->vm;
                            if (int st = run_op("vms.describe", request, result); st != exit_ok) return st;
                            if (d->json) {
                                fmt::print("{}\n", result["vm"].dump(2));
                                return exit_ok;
                            }
                            auto vm = hypersdk::vm_from_json(result["vm"]);
                            if (!vm) return report(vm.error());
                            print_vm(vm.value());
                            return exit_ok;
                        }});
    register_snapshots(*vms, commands);
}

// hsdk vms snapshots list|create|remove: the vms.snapshots.* operations.
void register_snapshots(CLI::App &vms, std::vector<Command> &commands) {
    auto *snaps = vms.add_subcommand("snapshots", "A VM's snapshots: list, create, remove (providers with snapshots)");
    snaps->require_subcommand(1);
    struct Args {
        ProviderFlags provider;
        std::string vm, name, snapshot;
        bool quiesce = false, json = false;
    };
    auto add = [&](const char *name, const char *help, const char *op) {
        auto *app = snaps->add_subcommand(name, help);
        auto a = std::make_shared<Args>();
        add_provider_flags(app, a->provider);
        app->add_option("--vm", a->vm, "The VM: inventory path, name or id as the provider knows it")->required();
        const std::string op_name = op;
        if (op_name == "vms.snapshots.create") {
            app->add_option("--name", a->name, "The snapshot's name")->required();
            app->add_flag("--quiesce", a->quiesce, "Quiesce the guest file systems first");
        }
        if (op_name == "vms.snapshots.remove") app->add_option("--snapshot", a->snapshot, "The snapshot's id (from 'snapshots list')")->required();
        add_output_flags(app, a->json, "the operation's result");
        commands.push_back({app, [a, op_name]() {
                                nlohmann::json request, result;
                                std::string error;
                                if (!a->provider.request(request, error)) return report_message(error, exit_usage);
                                request["vm"] = a->vm;
                                if (op_name == "vms.snapshots.create") {
                                    request["name"] = a->name;
                                    request["quiesce"] = a->quiesce;
                                }
                                if (op_name == "vms.snapshots.remove") request["snapshot"] = a->snapshot;
                                if (int st = run_op(op_name, request, result); st != exit_ok) return st;
                                if (a->json) {
                                    fmt::print("{}\n", result.dump(2));
                                    return exit_ok;
                                }
                                if (op_name == "vms.snapshots.list") {
                                    for (const auto &sn : result["snapshots"])
                                        fmt::print("{:<24} {:<26} {:<24} {}\n", sn["id"].get<std::string>(), sn["created"].get<std::string>(),
                                                   sn["parent"].get<std::string>().empty() ? "-" : sn["parent"].get<std::string>(),
                                                   sn["name"].get<std::string>());
                                } else {
                                    fmt::print("{}\n", result["snapshot"].get<std::string>());
                                }
                                return exit_ok;
                            }});
    };
    add("list", "List the VM's snapshots: id, created, parent, name", "vms.snapshots.list");
    add("create", "Take a snapshot (no memory); prints its id", "vms.snapshots.create");
    add("remove", "Remove one snapshot by id (consolidating its disks)", "vms.snapshots.remove");
}

void register_providers(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("providers", "List the providers (built-in and plugins from HSDK_PLUGIN_PATH) and what each can do");
    struct Args {
        bool json = false;
    };
    auto a = std::make_shared<Args>();
    add_output_flags(app, a->json, "names, capabilities, config schemas and origins");
    commands.push_back({app, [a]() {
                            nlohmann::json result;
                            if (int st = run_op("providers.list", nlohmann::json::object(), result); st != exit_ok) return st;
                            if (a->json) {
                                fmt::print("{}\n", result["providers"].dump(2));
                                return exit_ok;
                            }
                            for (const auto &p : result["providers"]) {
                                std::string caps;
                                for (const auto &c : p["capabilities"]) caps += (caps.empty() ? "" : ",") + c.get<std::string>();
                                fmt::print("{:<12} {:<50} {}\n", p["name"].get<std::string>(), caps, p["origin"].get<std::string>());
                                fmt::print("{:<12} {}\n", "", p["description"].get<std::string>());
                            }
                            return exit_ok;
                        }});
}

void register_export(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("export", "Export a VM (from vSphere, or any provider with block reads) to OVF/OVA or straight to a disk format");
    struct Args {
        ProviderFlags provider;
        bool no_space_check = false;
        std::string vm, out, format = "ova", transport = "auto", method;
        bool resume = false, progress = false, quiesce = false, overwrite = false, hyper2kvm = false;
        CompressFlags compression;
        EncryptFlags encrypt;
        KeyFlags keys;
        unsigned parallel = 1, threads = 0;
        std::vector<std::string> options;
    };
    auto a = std::make_shared<Args>();
    add_provider_flags(app, a->provider);
    app->add_flag("--no-space-check", a->no_space_check,
                  "Do not refuse up front when the output folder has less free space than 1.2 x the disks' data");
    app->add_option("--vm", a->vm, "The VM: inventory path (e.g. /DC0/vm/DC0_H0_VM0), or as the provider names it")->required();
    app->add_option("--out", a->out, "Output folder (created if missing)")->required();
    app->add_option("--format", a->format, "ova, ovf, qcow2, raw, vmdk, vhd, vhdx or vdi (default ova)")
        ->check(CLI::IsMember(hypersdk::export_formats()));
    app->add_flag("--resume", a->resume, "Continue an interrupted export from the state files in the output folder");
    app->add_flag("-p,--progress", a->progress, "Show progress");
    app->add_flag("--quiesce", a->quiesce, "Quiesce the guest file systems for the snapshot of a running VM");
    app->add_flag("--overwrite", a->overwrite, "Replace existing output files");
    app->add_flag("--hyper2kvm-manifest", a->hyper2kvm,
                  "Also write <vm>.hyper2kvm.json, hyper2kvm's artifact manifest of the disks (disk formats only)");
    app->add_option("--parallel", a->parallel, "Disks to download at once (default 1)")->check(CLI::Range(1u, 16u));
    app->add_option("-o,--options", a->options, "Options of the disk format, key=value[,...] (as for hsdk convert)");
    add_compress_flags(app, a->compression, "Compress the disks where the format can (qcow2)");
    add_encrypt_flags(app, a->encrypt);
    add_key_flags(app, a->keys, "the encrypted output", false);
    app->add_option("--gpg-home", a->keys.gpg_home, "GnuPG home (GNUPGHOME) holding the --gpg-recipient keys");
    app->add_option("--threads", a->threads, "Conversion workers per disk (default: one per core)");
    app->add_option("--transport", a->transport, "auto (NFC lease, datastore if the server cannot export), nfc or datastore")
        ->check(CLI::IsMember({"auto", "nfc", "datastore"}));
    app->add_option("--method", a->method,
                    "How another provider exports, in its words: aws: ebs-direct (default: snapshots read through the EBS "
                    "direct APIs) or export-task (an EC2 export task to the config's export_bucket, converted as it is read from S3)");
    commands.push_back({app, [a]() {
                            std::string options, error;
                            if (!join_format_options(a->options, options, error)) return report_message(error, exit_usage);
                            nlohmann::json request;
                            if (!a->provider.request(request, error)) return report_message(error, exit_usage);
                            if (a->provider.provider == "vsphere") {
                                request["connection"] = std::move(request["config"]);
                                request.erase("config");
                            }
                            request.update(nlohmann::json{{"vm", a->vm},                   {"output_dir", a->out},
                                                   {"format", a->format},             {"resume", a->resume}, {"quiesce", a->quiesce},
                                                   {"overwrite", a->overwrite},       {"parallel", a->parallel}, {"hyper2kvm_manifest", a->hyper2kvm},
                                                   {"threads", a->threads},
                                                   {"transport", a->transport},       {"no_space_check", a->no_space_check}});
                            if (!options.empty()) request["options"] = options;
                            if (!a->method.empty()) request["method"] = a->method;
                            if (!add_compress_request(a->compression, request, error)) return report_message(error, exit_usage);
                            if (!add_encrypt_request(a->encrypt, a->keys, request, error)) return report_message(error, exit_usage);
                            nlohmann::json res;
                            if (int st = run_op("export.run", request, res, progress_if(a->progress)); st != exit_ok) return st;
                            const auto resumed = res["bytes_resumed"].get<std::uint64_t>();
                            fmt::print("exported {} ({}{}) in {:.1f} s: {} received{}\n", res["vm"]["inventory_path"].get<std::string>(),
                                       res["method"].get<std::string>(), res["snapshot_used"].get<bool>() ? ", from a temporary snapshot" : "",
                                       res["seconds"].get<double>(), human_bytes(res["bytes_received"].get<std::uint64_t>()),
                                       resumed ? fmt::format(", {} resumed", human_bytes(resumed)) : "");
                            if (res.contains("encryption"))
                                fmt::print("encrypted: {} ({})\n", res["encryption"]["method"].get<std::string>(),
                                           res["encryption"]["key"].get<std::string>());
                            for (const auto &f : res["files"]) fmt::print("{}\n", f.get<std::string>());
                            return exit_ok;
                        }});
}

}  // namespace

void register_vsphere_commands(CLI::App &root, std::vector<Command> &commands) {
    register_providers(root, commands);
    register_vms(root, commands);
    register_export(root, commands);
}

}  // namespace hsdk
