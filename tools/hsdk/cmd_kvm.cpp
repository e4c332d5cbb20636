// hsdk kvm domain|manifest|import, hsdk ova verify|list, hsdk ovf show.
#include "commands.hpp"

#include <hypersdk/kvm.hpp>
#include <hypersdk/ovf.hpp>

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

// Flags shared by the kvm subcommands.
struct KvmFlags {
    std::string from;
    std::string vm_select;
    hypersdk::KvmOptions options;
    std::vector<std::string> network_maps, bridge_maps;
};

void add_kvm_flags(CLI::App *app, KvmFlags &f) {
    app->add_option("--from", f.from, "VM description: VM.ovf, VM.ova or vm.json")->required();
    app->add_option("--vm", f.vm_select, "Virtual system to use when the OVF holds several (id or name)");
    app->add_option("--disk-dir", f.options.disk_dir, "Folder holding the converted disks")->capture_default_str();
    app->add_option("--disk-format", f.options.disk_format, "Format of the converted disks")->capture_default_str();
    auto *net = app->add_option("--network", f.options.network, "libvirt network for every NIC (default: default)");
    auto *br = app->add_option("--bridge", f.options.bridge, "Host bridge for every NIC");
    net->excludes(br);
    app->add_option("--map-network", f.network_maps, "SOURCE=NETWORK: libvirt network for one source network (repeatable)");
    app->add_option("--map-bridge", f.bridge_maps, "SOURCE=BRIDGE: host bridge for one source network (repeatable)");
    app->add_option("--name", f.options.name, "Domain name (default: the VM's name)");
    app->add_flag("--windows-virtio", f.options.windows_virtio, "The Windows guest has virtio drivers: use virtio disks and NICs");
    app->add_option("--machine", f.options.machine, "Force the machine type")->check(CLI::IsMember({"q35", "pc"}));
    app->add_option("--ovmf-code", f.options.ovmf_code, "OVMF code file on the KVM host")->capture_default_str();
    app->add_option("--ovmf-vars", f.options.ovmf_vars, "OVMF variables template on the KVM host")->capture_default_str();
    app->add_option("--ovmf-code-secure", f.options.ovmf_code_secure, "Secure Boot OVMF code file")->capture_default_str();
    app->add_option("--ovmf-vars-secure", f.options.ovmf_vars_secure, "Secure Boot variables template (Microsoft keys)")->capture_default_str();
    app->add_option("--nvram-dir", f.options.nvram_dir, "Where libvirt keeps per-VM NVRAM")->capture_default_str();
}

// Applies the SOURCE=TARGET maps; a malformed one is a usage error.
bool apply_maps(KvmFlags &f, std::string &error) {
    auto split = [&](const std::vector<std::string> &in, std::vector<std::pair<std::string, std::string>> &out) {
        for (const auto &m : in) {
            const auto eq = m.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
                error = fmt::format("'{}' is not SOURCE=TARGET", m);
                return false;
            }
            out.emplace_back(m.substr(0, eq), m.substr(eq + 1));
        }
        return true;
    };
    return split(f.network_maps, f.options.network_map) && split(f.bridge_maps, f.options.bridge_map);
}

hypersdk::Result<hypersdk::VirtualMachine> load(const KvmFlags &f) {
    hypersdk::OvfParseOptions po;
    po.virtual_system = f.vm_select;
    return hypersdk::load_vm_description(f.from, po);
}

void register_domain(CLI::App &kvm, std::vector<Command> &commands) {
    auto *app = kvm.add_subcommand("domain", "Print a libvirt domain XML for the VM");
    auto f = std::make_shared<KvmFlags>();
    add_kvm_flags(app, *f);
    commands.push_back({app, [f]() {
                            std::string err;
                            if (!apply_maps(*f, err)) return report_message(err, exit_usage);
                            auto vm = load(*f);
                            if (!vm) return report(vm.error());
                            auto xml = hypersdk::libvirt_domain_xml(vm.value(), f->options);
                            if (!xml) return report(xml.error());
                            fmt::print("{}", xml.value());
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
                            std::string err;
                            if (!apply_maps(*f, err)) return report_message(err, exit_usage);
                            auto vm = load(*f);
                            if (!vm) return report(vm.error());
                            auto m = hypersdk::hyper2kvm_manifest(vm.value(), f->options);
                            if (!m) return report(m.error());
                            if (out->empty()) {
                                fmt::print("{}\n", m.value().dump(2));
                                return exit_ok;
                            }
                            auto w = hypersdk::write_json_file(*out, m.value());
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
        bool compress = false, progress = false, no_verify = false, overwrite = false;
        unsigned threads = 0;
    };
    auto a = std::make_shared<Args>();
    add_kvm_flags(app, a->f);
    app->add_option("--out", a->out, "Output folder for disks, domain XML and manifest (same as --disk-dir)");
    app->add_option("-o,--options", a->options, "Options of the disk format, key=value[,...]");
    app->add_flag("-c,--compress", a->compress, "Compress the converted disks where the format can");
    app->add_flag("-p,--progress", a->progress, "Show a progress bar on a terminal");
    app->add_flag("--no-verify", a->no_verify, "Do not check the OVA's manifest first");
    app->add_flag("--overwrite", a->overwrite, "Replace existing output files");
    app->add_option("--threads", a->threads, "Worker threads (default: one per core)");
    commands.push_back({app, [a]() {
                            std::string err;
                            if (!apply_maps(a->f, err)) return report_message(err, exit_usage);
                            hypersdk::KvmImportOptions o;
                            o.kvm = a->f.options;
                            if (!a->out.empty()) o.kvm.disk_dir = a->out;
                            for (const auto &text : a->options) {
                                auto parsed = hypersdk::parse_format_options(text);
                                if (!parsed) return report_message(parsed.error().message, exit_usage);
                                o.format_options.insert(o.format_options.end(), parsed.value().begin(), parsed.value().end());
                            }
                            o.compress = a->compress;
                            o.threads = a->threads;
                            o.verify = !a->no_verify;
                            o.overwrite = a->overwrite;
                            o.ovf.virtual_system = a->f.vm_select;
                            if (a->progress) o.progress = terminal_progress_bar();
                            auto r = hypersdk::import_to_kvm(a->f.from, o);
                            if (!r) return report(r.error());
                            for (const auto &d : r.value().disks) fmt::print("disk      {}\n", d);
                            fmt::print("domain    {}\n", r.value().domain_xml_path);
                            fmt::print("manifest  {}\n", r.value().manifest_path);
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
                                const bool is_ovf = file->size() > 4 && file->compare(file->size() - 4, 4, ".ovf") == 0;
                                auto r = is_ovf ? hypersdk::verify_ovf_folder(*file) : hypersdk::verify_ova(*file);
                                if (!r) return report(r.error());
                                for (const auto &v : r.value().verified) fmt::print("ok       {}\n", v);
                                for (const auto &p : r.value().problems) fmt::print("PROBLEM  {}\n", p);
                                if (!r.value().problems.empty())
                                    return report_message(fmt::format("'{}' failed verification: {} problem(s)", *file, r.value().problems.size()));
                                fmt::print("{}: {} file(s) verified against {}\n", *file, r.value().verified.size(), r.value().manifest);
                                return exit_ok;
                            }});
    }
    {
        auto *app = ova->add_subcommand("list", "List an OVA's members with offsets and sizes");
        auto file = std::make_shared<std::string>();
        app->add_option("file", *file, "FILE.ova")->required();
        commands.push_back({app, [file]() {
                                auto r = hypersdk::list_ova(*file);
                                if (!r) return report(r.error());
                                for (const auto &m : r.value()) fmt::print("{:>14}  {:>14}  {}\n", m.offset, m.size, m.name);
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
                                hypersdk::OvfParseOptions po;
                                po.virtual_system = *select;
                                auto vm = hypersdk::load_vm_description(*file, po);
                                if (!vm) return report(vm.error());
                                fmt::print("{}\n", hypersdk::to_json(vm.value()).dump(2));
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
