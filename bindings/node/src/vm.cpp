// VM descriptions, libvirt domain XML, the hyper2kvm manifest and OVA verification. VMs cross
// the C ABI as VM-model JSON; lib/vm.js turns them into objects.
#include "cancel.hpp"
#include "string_worker.hpp"

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

Napi::Value load_vm(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = string_value(env, info[0], "path");
    std::optional<std::string> system = optional_string(env, info[1], "virtualSystem");
    return (new StringWorker(env, "hypersdk.loadVm",
                             [path, system](char **out) { return hsdk_vm_load_json(out, path.c_str(), c_str_or_null(system)); }))
        ->Start();
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

// Hashes the converted disks, so it runs on the pool.
Napi::Value kvm_manifest(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string vm = string_value(env, info[0], "vm");
    KvmOptions options = kvm_options_from(env, info[1]);
    CancelHandle cancel = cancel_handle_from(env, info[2]);
    return (new StringWorker(env, "hypersdk.kvmManifest",
                             [vm, options, cancel](char **out) {
                                 const hsdk_kvm_options view = options.view();
                                 return hsdk_kvm_manifest_json(out, vm.c_str(), &view, cancel.get());
                             }))
        ->Start();
}

class VerifyOvaWorker : public PromiseWorker {
public:
    VerifyOvaWorker(Napi::Env env, std::string path, CancelHandle cancel)
        : PromiseWorker(env, "hypersdk.verifyOva"), path_(std::move(path)), cancel_(std::move(cancel)) {}

private:
    hsdk_status Run() override {
        char *json = nullptr;
        int ok = 0;
        const hsdk_status status = hsdk_ova_verify_json(&json, &ok, path_.c_str(), cancel_.get());
        report_ = take_string(json);
        ok_ = ok != 0;
        return status;
    }

    Napi::Value Result(Napi::Env env) override {
        Napi::Object o = Napi::Object::New(env);
        o.Set("report", Napi::String::New(env, report_));
        o.Set("ok", Napi::Boolean::New(env, ok_));
        return o;
    }

    std::string path_;
    CancelHandle cancel_;
    std::string report_;
    bool ok_ = false;
};

Napi::Value verify_ova(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = string_value(env, info[0], "path");
    CancelHandle cancel = cancel_handle_from(env, info[1]);
    return (new VerifyOvaWorker(env, std::move(path), std::move(cancel)))->Start();
}

}  // namespace

void init_vm(Napi::Env env, Napi::Object exports) {
    exports.Set("loadVm", Napi::Function::New(env, load_vm, "loadVm"));
    exports.Set("kvmDomainXml", Napi::Function::New(env, kvm_domain_xml, "kvmDomainXml"));
    exports.Set("kvmManifest", Napi::Function::New(env, kvm_manifest, "kvmManifest"));
    exports.Set("verifyOva", Napi::Function::New(env, verify_ova, "verifyOva"));
}

}  // namespace hsdk_node
