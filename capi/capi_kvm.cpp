// C ABI: VM descriptions, KVM domain XML and manifest, OVA verification.
#include "capi_internal.hpp"


namespace hypersdk::capi {
namespace {

Result<nlohmann::json> parse_map(const char *text, const char *what) {
    nlohmann::json out = nlohmann::json::object();
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
        out[item.substr(0, eq)] = item.substr(eq + 1);
        pos = comma + 1;
    }
    return out;
}

// The KVM options struct as request fields of kvm.domain / kvm.manifest.
Result<void> add_kvm_options(nlohmann::json &request, const hsdk_kvm_options *in) {
    HSDK_TRY(const hsdk_kvm_options c, read_struct<hsdk_kvm_options>(in, HSDK_KVM_OPTIONS_INIT, "hsdk_kvm_options"));
    const std::pair<const char *, const char *> strings[] = {
        {"name", c.name},           {"disk_dir", c.disk_dir},   {"disk_format", c.disk_format},
        {"network", c.network},     {"bridge", c.bridge},       {"machine", c.machine},
        {"ovmf_code", c.ovmf_code}, {"ovmf_vars", c.ovmf_vars}, {"ovmf_code_secure", c.ovmf_code_secure},
        {"ovmf_vars_secure", c.ovmf_vars_secure}, {"nvram_dir", c.nvram_dir}};
    for (const auto &[key, value] : strings)
        if (value != nullptr) request[key] = value;
    HSDK_TRY(auto nm, parse_map(c.network_map, "network_map"));
    HSDK_TRY(auto bm, parse_map(c.bridge_map, "bridge_map"));
    if (!nm.empty()) request["network_map"] = std::move(nm);
    if (!bm.empty()) request["bridge_map"] = std::move(bm);
    if (c.windows_virtio) request["windows_virtio"] = true;
    return success();
}

Result<nlohmann::json> vm_from_text(const char *vm_json) {
    if (vm_json == nullptr) return fail(Errc::invalid_argument, "invalid argument: vm_json is NULL");
    auto j = nlohmann::json::parse(vm_json, nullptr, false);
    if (j.is_discarded()) return fail(Errc::invalid_argument, "vm_json is not valid JSON");
    if (!j.is_object()) return fail(Errc::invalid_argument, "VM description: expected a JSON object");
    return j;
}

Result<nlohmann::json> kvm_request(const char *vm_json, const hsdk_kvm_options *options) {
    HSDK_TRY(auto vm, vm_from_text(vm_json));
    nlohmann::json request{{"vm", std::move(vm)}};
    HSDK_TRYV(add_kvm_options(request, options));
    return request;
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
        nlohmann::json request{{"path", path}};
        if (virtual_system) request["virtual_system"] = virtual_system;
        auto r = capi::run_typed("vm.load", request, nullptr, nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        *out_json = capi::copy_out(capi::dump(r.value()));
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_kvm_domain_xml(char **out_xml, const char *vm_json, const hsdk_kvm_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_xml != nullptr);
        *out_xml = nullptr;
        auto request = capi::kvm_request(vm_json, options);
        if (!request) return capi::set_error(request.error());
        auto r = capi::run_typed("kvm.domain", request.value(), nullptr, nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        *out_xml = capi::copy_out(r.value().at("xml").get<std::string>());
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_kvm_manifest_json(char **out_json, const char *vm_json, const hsdk_kvm_options *options,
                                            hsdk_cancel *cancel) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        auto request = capi::kvm_request(vm_json, options);
        if (!request) return capi::set_error(request.error());
        auto r = capi::run_typed("kvm.manifest", request.value(), cancel, nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        *out_json = capi::copy_out(capi::dump(r.value()));
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_ova_verify_json(char **out_report_json, int *out_ok, const char *path, hsdk_cancel *cancel) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_report_json != nullptr && out_ok != nullptr);
        *out_report_json = nullptr;
        *out_ok = 0;
        HSDK_CHECK_ARG(path != nullptr);
        auto r = capi::run_typed("ova.verify", {{"path", path}}, cancel, nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        *out_report_json = capi::copy_out(capi::dump(r.value()));
        *out_ok = r.value().at("ok").get<bool>() ? 1 : 0;
        return HSDK_OK;
    });
}

}  // extern "C"
