// libvirt domain XML, synchronously (it reads no file). VMs cross the C ABI as VM-model JSON.
// Everything else of lib/vm.js is a request to an operation (lib/ops.js).
#include "errors.hpp"
#include "values.hpp"

namespace hsdk_node {
namespace {

// The strings behind an hsdk_kvm_options, owned here so they outlive the call on the pool thread.
struct KvmOptions {
    std::optional<std::string> name, disk_dir, disk_format, network, bridge, network_map, bridge_map, machine, ovmf_code,
        ovmf_vars, ovmf_code_secure, ovmf_vars_secure, nvram_dir;
    bool windows_virtio = false;

    hsdk_kvm_options view() const {
        hsdk_kvm_options o = HSDK_KVM_OPTIONS_INIT;
        o.name = c_str_or_null(name);
        o.disk_dir = c_str_or_null(disk_dir);
        o.disk_format = c_str_or_null(disk_format);
        o.network = c_str_or_null(network);
        o.bridge = c_str_or_null(bridge);
        o.network_map = c_str_or_null(network_map);
        o.bridge_map = c_str_or_null(bridge_map);
        o.windows_virtio = windows_virtio ? 1 : 0;
        o.machine = c_str_or_null(machine);
        o.ovmf_code = c_str_or_null(ovmf_code);
        o.ovmf_vars = c_str_or_null(ovmf_vars);
        o.ovmf_code_secure = c_str_or_null(ovmf_code_secure);
        o.ovmf_vars_secure = c_str_or_null(ovmf_vars_secure);
        o.nvram_dir = c_str_or_null(nvram_dir);
        return o;
    }
};

// {name, diskDir, diskFormat, network, bridge, networkMap, bridgeMap, windowsVirtio, machine,
//  ovmfCode, ovmfVars, ovmfCodeSecure, ovmfVarsSecure, nvramDir};
// the maps arrive as "SOURCE=TARGET,..." strings (lib/vm.js builds them).
KvmOptions kvm_options_from(Napi::Env env, const Napi::Value &value) {
    KvmOptions o;
    if (value.IsUndefined() || value.IsNull()) return o;
    if (!value.IsObject()) throw_invalid_argument(env, "KVM options must be an object");
    Napi::Object obj = value.As<Napi::Object>();
    o.name = optional_string(env, obj, "name");
    o.disk_dir = optional_string(env, obj, "diskDir");
    o.disk_format = optional_string(env, obj, "diskFormat");
    o.network = optional_string(env, obj, "network");
    o.bridge = optional_string(env, obj, "bridge");
    o.network_map = optional_string(env, obj, "networkMap");
    o.bridge_map = optional_string(env, obj, "bridgeMap");
    o.machine = optional_string(env, obj, "machine");
    o.windows_virtio = bool_value(obj, "windowsVirtio", false);
    o.ovmf_code = optional_string(env, obj, "ovmfCode");
    o.ovmf_vars = optional_string(env, obj, "ovmfVars");
    o.ovmf_code_secure = optional_string(env, obj, "ovmfCodeSecure");
    o.ovmf_vars_secure = optional_string(env, obj, "ovmfVarsSecure");
    o.nvram_dir = optional_string(env, obj, "nvramDir");
    return o;
}

// Synchronous on purpose: it only turns JSON in memory into XML in memory, touching no file.
Napi::Value kvm_domain_xml(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string vm = string_value(env, info[0], "vm");
    const KvmOptions options = kvm_options_from(env, info[1]);
    const hsdk_kvm_options view = options.view();
    char *xml = nullptr;
    const hsdk_status status = hsdk_kvm_domain_xml(&xml, vm.c_str(), &view);
    if (status != HSDK_OK) throw_failure(env, capture_failure(status));
    return Napi::String::New(env, take_string(xml));
}

}  // namespace

void init_vm(Napi::Env env, Napi::Object exports) {
    exports.Set("kvmDomainXml", Napi::Function::New(env, kvm_domain_xml, "kvmDomainXml"));
}

}  // namespace hsdk_node
