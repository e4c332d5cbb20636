// C ABI: VM descriptions, KVM domain XML and manifest, OVA verification.
#include "capi_internal.hpp"

#include <hypersdk/kvm.hpp>
#include <hypersdk/ovf.hpp>

#include <cstdlib>
#include <cstring>

namespace hypersdk::capi {
namespace {

char *copy_out(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p == nullptr) throw std::bad_alloc();
    std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

Result<std::vector<std::pair<std::string, std::string>>> parse_map(const char *text, const char *what) {
    std::vector<std::pair<std::string, std::string>> out;
    if (text == nullptr || *text == '\0') return out;
    std::string s(text);
    std::size_t pos = 0;
    while (pos <= s.size()) {
        auto comma = s.find(',', pos);
        if (comma == std::string::npos) comma = s.size();
        const std::string item = s.substr(pos, comma - pos);
        const auto eq = item.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
            return fail(Errc::invalid_argument, std::string(what) + ": '" + item + "' is not SOURCE=TARGET");
        out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
        pos = comma + 1;
    }
    return out;
}

Result<KvmOptions> kvm_options_from(const hsdk_kvm_options *in) {
    KvmOptions o;
    if (in == nullptr) return o;
    if (in->struct_size < sizeof(size_t)) return fail(Errc::invalid_argument, "invalid argument: hsdk_kvm_options.struct_size");
    const hsdk_kvm_options c = capi::read_struct<hsdk_kvm_options>(in, HSDK_KVM_OPTIONS_INIT);
    if (c.name) o.name = c.name;
    if (c.disk_dir) o.disk_dir = c.disk_dir;
    if (c.disk_format) o.disk_format = c.disk_format;
    if (c.network) o.network = c.network;
    if (c.bridge) o.bridge = c.bridge;
    HSDK_TRY(auto nm, parse_map(c.network_map, "network_map"));
    HSDK_TRY(auto bm, parse_map(c.bridge_map, "bridge_map"));
    o.network_map = std::move(nm);
    o.bridge_map = std::move(bm);
    o.windows_virtio = c.windows_virtio != 0;
    if (c.machine) o.machine = c.machine;
    if (c.ovmf_code) o.ovmf_code = c.ovmf_code;
    if (c.ovmf_vars) o.ovmf_vars = c.ovmf_vars;
    if (c.ovmf_code_secure) o.ovmf_code_secure = c.ovmf_code_secure;
    if (c.ovmf_vars_secure) o.ovmf_vars_secure = c.ovmf_vars_secure;
    if (c.nvram_dir) o.nvram_dir = c.nvram_dir;
    return o;
}

Result<VirtualMachine> vm_from_text(const char *vm_json) {
    if (vm_json == nullptr) return fail(Errc::invalid_argument, "invalid argument: vm_json is NULL");
    auto j = nlohmann::json::parse(vm_json, nullptr, false);
    if (j.is_discarded()) return fail(Errc::invalid_argument, "vm_json is not valid JSON");
    return vm_from_json(j);
}

}  // namespace
}  // namespace hypersdk::capi

using namespace hypersdk;

extern "C" {

HSDK_API hsdk_status hsdk_vm_load_json(char **out_json, const char *path, const char *virtual_system) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        HSDK_CHECK_ARG(path != nullptr);
        OvfParseOptions po;
        if (virtual_system) po.virtual_system = virtual_system;
        auto vm = load_vm_description(path, po);
        if (!vm) return capi::set_error(vm.error());
        *out_json = capi::copy_out(to_json(vm.value()).dump());
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_kvm_domain_xml(char **out_xml, const char *vm_json, const hsdk_kvm_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_xml != nullptr);
        *out_xml = nullptr;
        auto vm = capi::vm_from_text(vm_json);
        if (!vm) return capi::set_error(vm.error());
        auto o = capi::kvm_options_from(options);
        if (!o) return capi::set_error(o.error());
        auto xml = libvirt_domain_xml(vm.value(), o.value());
        if (!xml) return capi::set_error(xml.error());
        *out_xml = capi::copy_out(xml.value());
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_kvm_manifest_json(char **out_json, const char *vm_json, const hsdk_kvm_options *options,
                                            hsdk_cancel *cancel) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        auto vm = capi::vm_from_text(vm_json);
        if (!vm) return capi::set_error(vm.error());
        auto o = capi::kvm_options_from(options);
        if (!o) return capi::set_error(o.error());
        auto m = hyper2kvm_manifest(vm.value(), o.value(), capi::token_of(cancel));
        if (!m) return capi::set_error(m.error());
        *out_json = capi::copy_out(m.value().dump());
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_ova_verify_json(char **out_report_json, int *out_ok, const char *path, hsdk_cancel *cancel) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_report_json != nullptr && out_ok != nullptr);
        *out_report_json = nullptr;
        *out_ok = 0;
        HSDK_CHECK_ARG(path != nullptr);
        const std::string p(path);
        const bool is_ovf = p.size() > 4 && p.compare(p.size() - 4, 4, ".ovf") == 0;
        auto r = is_ovf ? verify_ovf_folder(p, capi::token_of(cancel)) : verify_ova(p, capi::token_of(cancel));
        if (!r) return capi::set_error(r.error());
        const auto &v = r.value();
        nlohmann::json j{{"descriptor", v.descriptor}, {"manifest", v.manifest}, {"verified", v.verified}, {"problems", v.problems}};
        *out_report_json = capi::copy_out(j.dump());
        *out_ok = v.problems.empty() ? 1 : 0;
        return HSDK_OK;
    });
}

}  // extern "C"
