// Operations on VM descriptions, OVF/OVA and KVM: vm.load, ovf.parse, ovf.write, ova.list,
// ova.verify, ova.pack, kvm.domain, kvm.manifest, kvm.import.
#include "io/artifact_crypto.hpp"
#include "ops/context.hpp"

#include <hypersdk/kvm.hpp>
#include <hypersdk/ovf.hpp>
#include <hypersdk/vm.hpp>

#include <fmt/format.h>

#include <filesystem>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

bool is_ovf_path(const std::string &p) { return p.size() > 4 && p.compare(p.size() - 4, 4, ".ovf") == 0; }

OvfParseOptions parse_options(const json &r) {
    OvfParseOptions o;
    o.virtual_system = str(r, "virtual_system");
    return o;
}

std::vector<std::pair<std::string, std::string>> pairs(const json &r, std::string_view key) {
    std::vector<std::pair<std::string, std::string>> out;
    if (auto it = r.find(key); it != r.end() && it->is_object())
        for (const auto &[k, v] : it->items()) out.emplace_back(k, v.get<std::string>());
    return out;
}

}  // namespace

KvmOptions kvm_options(const json &r) {
    KvmOptions o;
    auto set = [&](std::string_view key, std::string &field) {
        if (auto v = opt_str(r, key)) field = *v;
    };
    set("name", o.name);
    set("disk_dir", o.disk_dir);
    set("disk_format", o.disk_format);
    set("network", o.network);
    set("bridge", o.bridge);
    o.network_map = pairs(r, "network_map");
    o.bridge_map = pairs(r, "bridge_map");
    o.windows_virtio = flag(r, "windows_virtio");
    o.strict = flag(r, "strict");
    set("machine", o.machine);
    set("ovmf_code", o.ovmf_code);
    set("ovmf_vars", o.ovmf_vars);
    set("ovmf_code_secure", o.ovmf_code_secure);
    set("ovmf_vars_secure", o.ovmf_vars_secure);
    set("nvram_dir", o.nvram_dir);
    return o;
}

namespace {

// The VM of a kvm.* request: given inline (vm) or read from a description (from).
Result<VirtualMachine> requested_vm(const json &r) {
    if (auto it = r.find("vm"); it != r.end()) return vm_from_json(*it);
    return load_vm_description(str(r, "from"), parse_options(r));
}

json report_json(const OvaVerifyReport &v) {
    return {{"descriptor", v.descriptor}, {"manifest", v.manifest}, {"verified", v.verified}, {"problems", v.problems},
            {"ok", v.problems.empty()}};
}

Result<json> vm_load(Context &c) {
    HSDK_TRY(auto vm, load_vm_description(str(c.request(), "path"), parse_options(c.request())));
    return to_json(vm);
}

Result<json> ovf_parse(Context &c) {
    const auto &r = c.request();
    Result<OvfDescriptor> d = r.contains("text") ? parse_ovf(str(r, "text"), "OVF descriptor", parse_options(r))
                                                 : read_ovf_package(str(r, "path"), parse_options(r));
    if (!d) return fail(d.error());
    json files = json::array(), disks = json::array();
    for (const auto &f : d.value().files)
        files.push_back({{"id", f.id}, {"href", f.href}, {"size", f.size ? json(*f.size) : json(nullptr)}, {"compression", f.compression}});
    for (const auto &k : d.value().disks)
        disks.push_back({{"disk_id", k.disk_id},
                         {"file_ref", k.file_ref},
                         {"capacity_bytes", k.capacity_bytes},
                         {"populated_bytes", k.populated_bytes ? json(*k.populated_bytes) : json(nullptr)},
                         {"format_uri", k.format_uri}});
    return json{{"ovf_version", d.value().ovf_version},
                {"producer", d.value().producer},
                {"files", std::move(files)},
                {"disks", std::move(disks)},
                {"networks", d.value().networks},
                {"virtual_systems", d.value().virtual_systems},
                {"warnings", d.value().warnings},
                {"vm", to_json(d.value().vm)}};
}

Result<json> ovf_write(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto vm, vm_from_json(r.at("vm")));
    std::vector<OvfWriteFile> files;
    for (const auto &f : r.value("disk_files", json::array()))
        files.push_back({f.at("href").get<std::string>(), f.at("size").get<std::uint64_t>(), f.value("compression", "")});
    return json{{"xml", write_ovf(vm, files)}};
}

Result<json> ova_list(Context &c) {
    HSDK_TRY(auto members, list_ova(str(c.request(), "path")));
    json out = json::array();
    for (const auto &m : members) out.push_back({{"name", m.name}, {"offset", m.offset}, {"size", m.size}});
    return json{{"members", std::move(out)}};
}

Result<json> ova_verify(Context &c) {
    const std::string path = str(c.request(), "path");
    HSDK_TRY(auto report, is_ovf_path(path) ? verify_ovf_folder(path, c.cancel()) : verify_ova(path, c.cancel()));
    return report_json(report);
}

Result<json> ova_pack(Context &c) {
    const auto &r = c.request();
    const std::string destination = str(r, "destination");
    std::error_code ec;
    if (!flag(r, "overwrite") && std::filesystem::exists(destination, ec))
        return fail(Errc::conflict, fmt::format("'{}' already exists (set overwrite to replace it)", destination));
    std::vector<OvaPackInput> members;
    for (const auto &m : r.at("members")) members.push_back({m.at("name").get<std::string>(), m.at("path").get<std::string>()});
    HSDK_TRYV(pack_ova(destination, members, c.cancel()));
    const auto size = std::filesystem::file_size(destination, ec);
    if (ec) return fail(Errc::io_error, fmt::format("cannot stat '{}': {}", destination, ec.message()));
    return json{{"path", destination}, {"size", size}};
}

Result<json> kvm_domain(Context &c) {
    HSDK_TRY(auto vm, requested_vm(c.request()));
    const auto o = kvm_options(c.request());
    HSDK_TRY(auto xml, libvirt_domain_xml(vm, o));
    return json{{"xml", xml}, {"name", o.name.empty() ? vm.name : o.name}};
}

Result<json> kvm_manifest(Context &c) {
    HSDK_TRY(auto vm, requested_vm(c.request()));
    return hyper2kvm_manifest(vm, kvm_options(c.request()), c.cancel());
}

Result<json> kvm_import(Context &c) {
    const auto &r = c.request();
    KvmImportOptions o;
    o.kvm = kvm_options(r);
    o.kvm.disk_dir = str(r, "out");
    HSDK_TRY(o.format_options, format_options(r, "options"));
    o.compress = flag(r, "compress");
    o.threads = static_cast<unsigned>(u64(r, "threads"));
    o.verify = flag(r, "verify", true);
    o.overwrite = flag(r, "overwrite");
    o.ovf = parse_options(r);
    HSDK_TRY(auto open, open_options(c));
    o.keys = io::decryption_keys_of(open.http);
    o.progress = c.progress();
    o.cancel = c.cancel();
    HSDK_TRY(auto res, import_to_kvm(str(r, "from"), o));
    return json{{"vm", to_json(res.vm)}, {"disks", res.disks}, {"domain_xml_path", res.domain_xml_path}, {"manifest_path", res.manifest_path}};
}

const HandlerEntry vm_table[] = {
    {"vm.load", vm_load},       {"ovf.parse", ovf_parse},   {"ovf.write", ovf_write},     {"ova.list", ova_list},
    {"ova.verify", ova_verify}, {"ova.pack", ova_pack},     {"kvm.domain", kvm_domain},   {"kvm.manifest", kvm_manifest},
    {"kvm.import", kvm_import},
};

}  // namespace

std::span<const HandlerEntry> vm_handlers() { return vm_table; }

}  // namespace hypersdk::ops
