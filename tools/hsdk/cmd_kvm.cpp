// hsdk kvm domain|manifest|import, hsdk ova verify|list, hsdk ovf show: requests to kvm.domain,
// kvm.manifest, kvm.import, ova.verify, ova.list and vm.load.
#include "artifact_flags.hpp"
#include "commands.hpp"
#include "progress_display.hpp"

#include <hypersdk/kvm.hpp>

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

using json = nlohmann::json;

// Flags shared by the kvm subcommands, as fields of their requests.
struct KvmFlags {
    std::string from, vm_select, disk_dir = ".", disk_format = "qcow2", network, bridge, name, machine;
    std::string ovmf_code, ovmf_vars, ovmf_code_secure, ovmf_vars_secure, nvram_dir;
    bool windows_virtio = false, strict = false;
    std::vector<std::string> network_maps, bridge_maps;

    // The request fields; a malformed SOURCE=TARGET is a usage error.
    bool add_to(json &request, std::string &error, bool with_disk_dir = true) const {
        request["from"] = from;
        if (!vm_select.empty()) request["virtual_system"] = vm_select;
        if (with_disk_dir) request["disk_dir"] = disk_dir;
        request["disk_format"] = disk_format;
        const std::pair<const char *, const std::string *> strings[] = {
            {"network", &network},     {"bridge", &bridge},       {"name", &name},
            {"machine", &machine},     {"ovmf_code", &ovmf_code}, {"ovmf_vars", &ovmf_vars},
            {"ovmf_code_secure", &ovmf_code_secure}, {"ovmf_vars_secure", &ovmf_vars_secure}, {"nvram_dir", &nvram_dir}};
        for (const auto &[key, value] : strings)
            if (!value->empty()) request[key] = *value;
        if (windows_virtio) request["windows_virtio"] = true;
        if (strict) request["strict"] = true;
        auto maps = [&](const std::vector<std::string> &in, const char *key) {
            json m = json::object();
            for (const auto &item : in) {
                const auto eq = item.find('=');
                if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
                    error = fmt::format("'{}' is not SOURCE=TARGET", item);
                    return false;
                }
                m[item.substr(0, eq)] = item.substr(eq + 1);
            }
            if (!m.empty()) request[key] = std::move(m);
            return true;
        };
        return maps(network_maps, "network_map") && maps(bridge_maps, "bridge_map");
    }
};

void add_kvm_flags(CLI::App *app, KvmFlags &f) {
    const hypersdk::KvmOptions defaults;
    f.ovmf_code = defaults.ovmf_code;
    f.ovmf_vars = defaults.ovmf_vars;
    f.ovmf_code_secure = defaults.ovmf_code_secure;
    f.ovmf_vars_secure = defaults.ovmf_vars_secure;
    f.nvram_dir = defaults.nvram_dir;
    app->add_option("--from", f.from, "VM description: VM.ovf, VM.ova or vm.json")->required();
    app->add_option("--vm", f.vm_select, "Virtual system to use when the OVF holds several (id or name)");
    app->add_option("--disk-dir", f.disk_dir, "Folder holding the converted disks")->capture_default_str();
    app->add_option("--disk-format", f.disk_format, "Format of the converted disks: raw, qcow2, vmdk, vhd (vpc), vhdx or vdi")
        ->capture_default_str()
        ->check(CLI::IsMember({"raw", "qcow2", "vmdk", "vhd", "vpc", "vhdx", "vdi"}));
    auto *net = app->add_option("--network", f.network, "libvirt network for every NIC (default: default)");
    auto *br = app->add_option("--bridge", f.bridge, "Host bridge for every NIC");
    net->excludes(br);
    app->add_option("--map-network", f.network_maps, "SOURCE=NETWORK: libvirt network for one source network (repeatable)");
    app->add_option("--map-bridge", f.bridge_maps, "SOURCE=BRIDGE: host bridge for one source network (repeatable)");
    app->add_flag("--strict", f.strict, "A --map-network/--map-bridge source that no NIC is on is an error (default: a warning)");
    app->add_option("--name", f.name, "Domain name (default: the VM's name)");
    app->add_flag("--windows-virtio", f.windows_virtio, "The Windows guest has virtio drivers: use virtio disks and NICs");
    app->add_option("--machine", f.machine, "Force the machine type")->check(CLI::IsMember({"q35", "pc"}));
    app->add_option("--ovmf-code", f.ovmf_code, "OVMF code file on the KVM host")->capture_default_str();
    app->add_option("--ovmf-vars", f.ovmf_vars, "OVMF variables template on the KVM host")->capture_default_str();
    app->add_option("--ovmf-code-secure", f.ovmf_code_secure, "Secure Boot OVMF code file")->capture_default_str();
    app->add_option("--ovmf-vars-secure", f.ovmf_vars_secure, "Secure Boot variables template (Microsoft keys)")->capture_default_str();
    app->add_option("--nvram-dir", f.nvram_dir, "Where libvirt keeps per-VM NVRAM")->capture_default_str();
}

void register_domain(CLI::App &kvm, std::vector<Command> &commands) {
    auto *app = kvm.add_subcommand("domain", "Print a libvirt domain XML for the VM");
    auto f = std::make_shared<KvmFlags>();
    add_kvm_flags(app, *f);
    commands.push_back({app, [f]() {
                            json request;
                            std::string err;
                            if (!f->add_to(request, err)) return report_message(err, exit_usage);
                            json r;
                            if (int s = run_op("kvm.domain", request, r); s != exit_ok) return s;
                            fmt::print("{}", r["xml"].get<std::string>());
                            return exit_ok;
                        }});
}

void register_manifest(CLI::App &kvm, std::vector<Command> &commands) {
    auto *app = kvm.add_subcommand("manifest", "Write the hyper2kvm artifact manifest (JSON) for converted disks");
    auto f = std::make_shared<KvmFlags>();
    auto out = std::make_shared<std::string>();
    add_kvm_flags(app, *f);
    app->add_option("-o,--out", *out, "Write to this file (atomically) instead of standard output");
    commands.push_back({app, [f, out]() {
                            json request;
                            std::string err;
                            if (!f->add_to(request, err)) return report_message(err, exit_usage);
                            json m;
                            if (int s = run_op("kvm.manifest", request, m); s != exit_ok) return s;
                            if (out->empty()) {
                                fmt::print("{}\n", m.dump(2));
                                return exit_ok;
                            }
                            auto w = hypersdk::write_json_file(*out, m);
                            if (!w) return report(w.error());
                            return exit_ok;
                        }});
}

void register_import(CLI::App &kvm, std::vector<Command> &commands) {
    auto *app = kvm.add_subcommand(
        "import", "Convert the VM's disks (straight out of an OVA), write its libvirt domain and hyper2kvm manifest");
    struct Args {
        KvmFlags f;
        std::string out;
        std::vector<std::string> options;
        bool progress = false, no_verify = false, overwrite = false;
        CompressFlags compression;
        KeyFlags keys;
        unsigned threads = 0;
    };
    auto a = std::make_shared<Args>();
    add_kvm_flags(app, a->f);
    app->add_option("--out", a->out, "Output folder for disks, domain XML and manifest (same as --disk-dir)");
    app->add_option("-o,--options", a->options, "Options of the disk format, key=value[,...]");
    add_compress_flags(app, a->compression, "Compress the converted disks where the format can", false);
    add_key_flags(app, a->keys, "encrypted disk files (an export with --encrypt)");
    app->add_flag("-p,--progress", a->progress, "Show a progress bar on a terminal");
    app->add_flag("--no-verify", a->no_verify, "Do not check the OVA's manifest first");
    app->add_flag("--overwrite", a->overwrite, "Replace existing output files");
    app->add_option("--threads", a->threads, "Worker threads (default: one per core)");
    commands.push_back({app, [a]() {
                            json request;
                            std::string err, options;
                            if (!a->f.add_to(request, err, false)) return report_message(err, exit_usage);
                            if (!join_format_options(a->options, options, err)) return report_message(err, exit_usage);
                            request["out"] = a->out.empty() ? a->f.disk_dir : a->out;
                            if (!options.empty()) request["options"] = options;
                            request["compress"] = a->compression.native || a->compression.method == "native";
                            if (auto k = a->keys.decrypt_request(); !k.empty()) request["decrypt"] = k;
                            request["threads"] = a->threads;
                            request["verify"] = !a->no_verify;
                            request["overwrite"] = a->overwrite;
                            json r;
                            if (int s = run_op("kvm.import", request, r, progress_if(a->progress)); s != exit_ok)
                                return s;
                            for (const auto &d : r["disks"]) fmt::print("disk      {}\n", d.get<std::string>());
                            fmt::print("domain    {}\n", r["domain_xml_path"].get<std::string>());
                            fmt::print("manifest  {}\n", r["manifest_path"].get<std::string>());
                            return exit_ok;
                        }});
}

void register_ova(CLI::App &root, std::vector<Command> &commands) {
    auto *ova = root.add_subcommand("ova", "OVA packages");
    ova->require_subcommand(1);
    {
        auto *app = ova->add_subcommand("verify", "Check an OVA (or an .ovf with its files) against its manifest");
        auto file = std::make_shared<std::string>();
        app->add_option("file", *file, "FILE.ova or FILE.ovf")->required();
        commands.push_back({app, [file]() {
                                json r;
                                if (int s = run_op("ova.verify", {{"path", *file}}, r); s != exit_ok) return s;
                                for (const auto &v : r["verified"]) fmt::print("ok       {}\n", v.get<std::string>());
                                for (const auto &p : r["problems"]) fmt::print("PROBLEM  {}\n", p.get<std::string>());
                                if (!r["problems"].empty())
                                    return report_message(fmt::format("'{}' failed verification: {} problem(s)", *file, r["problems"].size()));
                                fmt::print("{}: {} file(s) verified against {}\n", *file, r["verified"].size(), r["manifest"].get<std::string>());
                                return exit_ok;
                            }});
    }
    {
        auto *app = ova->add_subcommand("list", "List an OVA's members with offsets and sizes");
        auto file = std::make_shared<std::string>();
        app->add_option("file", *file, "FILE.ova")->required();
        commands.push_back({app, [file]() {
                                json r;
                                if (int s = run_op("ova.list", {{"path", *file}}, r); s != exit_ok) return s;
                                for (const auto &m : r["members"])
                                    fmt::print("{:>14}  {:>14}  {}\n", m["offset"].get<std::uint64_t>(), m["size"].get<std::uint64_t>(),
                                               m["name"].get<std::string>());
                                return exit_ok;
                            }});
    }
    auto *ovf = root.add_subcommand("ovf", "OVF descriptors");
    ovf->require_subcommand(1);
    {
        auto *app = ovf->add_subcommand("show", "Print the VM an OVF/OVA describes, as hsdk's VM model (JSON)");
        auto file = std::make_shared<std::string>();
        auto select = std::make_shared<std::string>();
        app->add_option("file", *file, "FILE.ovf or FILE.ova")->required();
        app->add_option("--vm", *select, "Virtual system to show when there are several");
        commands.push_back({app, [file, select]() {
                                json request{{"path", *file}};
                                if (!select->empty()) request["virtual_system"] = *select;
                                json vm;
                                if (int s = run_op("vm.load", request, vm); s != exit_ok) return s;
                                fmt::print("{}\n", vm.dump(2));
                                return exit_ok;
                            }});
    }
}

}  // namespace

void register_kvm_commands(CLI::App &root, std::vector<Command> &commands) {
    auto *kvm = root.add_subcommand("kvm", "Turn an exported VM into a KVM guest: libvirt domain, hyper2kvm manifest");
    kvm->require_subcommand(1);
    register_domain(*kvm, commands);
    register_manifest(*kvm, commands);
    register_import(*kvm, commands);
    register_ova(root, commands);
}

}  // namespace hsdk
