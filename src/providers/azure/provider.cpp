// The "azure" provider: VMs found through ARM (paged), their managed disks and NICs; the
// connection config and its credentials (service principal, managed identity, a token given).
#include "providers/azure/session.hpp"

#include "providers/builtin.hpp"
#include "providers/config_secret.hpp"
#include "core/json_fields.hpp"
#include "core/env.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace hypersdk::azure {
namespace {

using json = nlohmann::json;
constexpr std::uint64_t GiB = 1ull << 30;

using json_fields::str;

using core::env;


// "/subscriptions/S/resourceGroups/RG/providers/..." -> RG.
std::string resource_group_of(const std::string &id) {
    const std::string key = "/resourceGroups/";
    auto at = id.find(key);
    if (at == std::string::npos) {
        std::string lower = id;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        at = lower.find("/resourcegroups/");
        if (at == std::string::npos) return {};
    }
    const auto start = at + key.size();
    return id.substr(start, id.find('/', start) - start);
}

// vCPUs and memory of the common sizes, from the name (Standard_D4s_v5: 4 vCPUs of the D family).
std::pair<int, std::uint64_t> size_of(const std::string &vm_size) {
    std::string s = vm_size;
    if (s.rfind("Standard_", 0) == 0) s = s.substr(9);
    if (s.empty()) return {0, 0};
    const char family = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    std::size_t i = 1;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    const int cpus = std::atoi(s.c_str() + i);
    if (cpus <= 0) return {0, 0};
    std::uint64_t per_cpu = 0;
    switch (family) {
    case 'B': per_cpu = s.find("ms") != std::string::npos ? 4096 : 2048; break;
    case 'D': per_cpu = 4096; break;
    case 'E': per_cpu = 8192; break;
    case 'F': per_cpu = 2048; break;
    default: return {cpus, 0};
    }
    return {cpus, per_cpu * static_cast<std::uint64_t>(cpus)};
}

}  // namespace

Result<json> AzureSession::find_vm(const std::string &vm) {
    const std::string sub = arm_settings_.subscription_id;
    if (vm.rfind("/subscriptions/", 0) == 0) {
        auto got = arm_->call("GET", vm, compute_api, nullptr, "ARM get VM " + vm);
        if (!got && got.error().code == Errc::not_found) return fail(Errc::not_found, fmt::format("no Azure VM '{}'", vm));
        return got;
    }
    HSDK_TRY(auto all, arm_->list(fmt::format("/subscriptions/{}/providers/Microsoft.Compute/virtualMachines", sub), compute_api,
                                  "ARM list VMs"));
    std::vector<json> named;
    for (auto &v : all)
        if (str(v, "name") == vm) named.push_back(std::move(v));
    if (named.empty()) return fail(Errc::not_found, fmt::format("no Azure VM named '{}' in subscription {}", vm, sub));
    if (named.size() > 1) {
        std::string ids;
        for (const auto &v : named) ids += (ids.empty() ? "" : ", ") + str(v, "id");
        return fail(Errc::conflict, fmt::format("{} VMs are named '{}' ({}): name one by its resource id", named.size(), vm, ids));
    }
    return std::move(named.front());
}

Result<VirtualMachine> AzureSession::to_vm(const json &v) {
    const json props = v.value("properties", json::object());
    VirtualMachine vm;
    vm.provider = "azure";
    vm.id = str(v, "id");
    vm.name = str(v, "name");
    vm.inventory_path = fmt::format("/{}/{}/{}", arm_settings_.subscription_id, resource_group_of(vm.id), vm.name);
    vm.uuid = str(props, "vmId");
    const std::string size = props.value("hardwareProfile", json::object()).value("vmSize", "");
    vm.hardware_version = "azure-" + size;
    auto [cpus, mib] = size_of(size);
    vm.cpus = std::max(1, cpus);
    vm.memory_mib = mib;
    const json security = props.value("securityProfile", json::object());
    vm.secure_boot = security.value("uefiSettings", json::object()).value("secureBootEnabled", false);
    const json storage = props.value("storageProfile", json::object());
    const json os = storage.value("osDisk", json::object());
    const std::string os_type = os.value("osType", "");
    vm.guest_id = os_type == "Windows" ? "windows2019srv_64Guest" : "otherLinux64Guest";
    vm.guest_os_description = os_type;
    std::vector<std::pair<int, json>> disks{{-1, os}};
    for (const auto &d : storage.value("dataDisks", json::array())) disks.emplace_back(d.value("lun", 0), d);
    bool gen2 = false;
    for (const auto &[lun, d] : disks) {
        const std::string id = d.value("managedDisk", json::object()).value("id", "");
        if (id.empty()) return fail(Errc::unsupported, fmt::format("unsupported: disk '{}' of {} is not a managed disk", str(d, "name"), vm.name));
        HSDK_TRY(auto disk, arm_->call("GET", id, disk_api, nullptr, "ARM get disk " + str(d, "name")));
        const json dp = disk.value("properties", json::object());
        VmDisk out;
        out.id = str(disk, "id");
        out.label = lun < 0 ? "OS disk " + str(disk, "name") : fmt::format("LUN {} {}", lun, str(disk, "name"));
        out.capacity_bytes = dp.contains("diskSizeBytes") ? dp["diskSizeBytes"].get<std::uint64_t>()
                                                          : dp.value("diskSizeGB", std::uint64_t{0}) * GiB;
        out.controller = "scsi";
        out.unit = lun < 0 ? 0 : lun;
        out.controller_bus = lun < 0 ? 0 : 1;
        out.backing_file = out.id;
        out.datastore = disk.value("sku", json::object()).value("name", "");
        out.file_format = "vhd";
        if (lun < 0) {
            out.boot_order = 1;
            gen2 = dp.value("hyperVGeneration", "") == "V2";
        }
        vm.disks.push_back(std::move(out));
    }
    vm.firmware = gen2 || security.value("securityType", "") == "TrustedLaunch" ? Firmware::efi : Firmware::bios;
    for (const auto &n : props.value("networkProfile", json::object()).value("networkInterfaces", json::array())) {
        HSDK_TRY(auto nic, arm_->call("GET", str(n, "id"), network_api, nullptr, "ARM get NIC"));
        VmNic out;
        out.id = str(nic, "id");
        std::string mac = nic.value("properties", json::object()).value("macAddress", "");
        std::replace(mac.begin(), mac.end(), '-', ':');
        std::transform(mac.begin(), mac.end(), mac.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        out.mac = mac;
        out.network = str(nic, "name");
        out.adapter_type = "hyperv-netvsc";
        vm.nics.push_back(std::move(out));
    }
    return vm;
}

Result<std::vector<VirtualMachine>> AzureSession::list_vms(const VmFilter &filter) {
    HSDK_TRY(auto all, arm_->list(fmt::format("/subscriptions/{}/providers/Microsoft.Compute/virtualMachines", arm_settings_.subscription_id),
                                  compute_api, "ARM list VMs"));
    std::vector<VirtualMachine> out;
    for (const auto &v : all) {
        if (!filter.name_contains.empty() && str(v, "name").find(filter.name_contains) == std::string::npos) continue;
        HSDK_TRY(auto vm, to_vm(v));
        out.push_back(std::move(vm));
    }
    return out;
}

Result<VirtualMachine> AzureSession::describe(const std::string &vm) {
    HSDK_TRY(auto v, find_vm(vm));
    return to_vm(v);
}

Result<TrackingStatus> AzureSession::tracking_status(const std::string &vm) {
    HSDK_TRY(auto described, describe(vm));
    TrackingStatus st;
    st.enabled = true;  // page-range diffs between incremental snapshots: nothing to switch on
    for (const auto &d : described.disks) st.disks.push_back(DiskTracking{d.id, d.label, ""});
    return st;
}

Result<TrackingStatus> AzureSession::enable_tracking(const std::string &vm, bool enabled) {
    if (!enabled) return fail(Errc::unsupported, "unsupported: Azure page-range diffs need no tracking and cannot be switched off");
    return tracking_status(vm);
}

namespace {

class AzureProvider final : public Provider {
public:
    std::string name() const override { return "azure"; }
    std::string description() const override {
        return "Microsoft Azure: VMs through ARM, managed disks read sparsely from incremental snapshots (beginGetAccess SAS, page "
               "ranges), incrementals from page-range diffs";
    }
    std::uint32_t capabilities() const override {
        using C = ProviderCapability;
        return static_cast<std::uint32_t>(C::list) | static_cast<std::uint32_t>(C::describe) | static_cast<std::uint32_t>(C::native_export) |
               static_cast<std::uint32_t>(C::changed_extents);
    }
    json config_schema() const override { return {{"$ref", "common.json#/definitions/azure_connection"}}; }

    Result<std::unique_ptr<ProviderSession>> connect(const json &config, const CancelToken &cancel) const override {
        cloud::azure::ArmCredentials c;
        c.tenant_id = str(config, "tenant_id").empty() ? env("AZURE_TENANT_ID") : str(config, "tenant_id");
        c.client_id = str(config, "client_id").empty() ? env("AZURE_CLIENT_ID") : str(config, "client_id");
        HSDK_TRY(c.client_secret, config_secret(config, "client_secret"));
        if (c.client_secret.empty() && str(config, "client_id").empty()) c.client_secret = env("AZURE_CLIENT_SECRET");
        HSDK_TRY(c.access_token, config_secret(config, "access_token"));
        c.managed_identity = config.value("managed_identity", false);
        if (auto a = str(config, "authority"); !a.empty()) c.authority = a;
        if (auto i = str(config, "imds_endpoint"); !i.empty()) c.imds_endpoint = i;
        if (auto a = str(config, "arm_audience"); !a.empty()) c.audience = a;
        while (!c.authority.empty() && c.authority.back() == '/') c.authority.pop_back();
        cloud::azure::ArmSettings s;
        s.subscription_id = str(config, "subscription_id").empty() ? env("AZURE_SUBSCRIPTION_ID") : str(config, "subscription_id");
        if (s.subscription_id.empty())
            return fail(Errc::invalid_argument, "no Azure subscription: give subscription_id or set AZURE_SUBSCRIPTION_ID");
        if (auto e = str(config, "arm_endpoint"); !e.empty()) s.endpoint = e;
        while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
        s.max_attempts = config.value("max_attempts", 8u);
        s.timeout = std::chrono::seconds(config.value("timeout", 60u));
        s.poll_interval = std::chrono::milliseconds(config.value("poll_interval_ms", 2000u));
        s.operation_timeout = std::chrono::seconds(config.value("operation_timeout", 3600u));
        s.insecure = config.value("insecure", false);
        s.ca_file = str(config, "ca_file");
        s.cancel = cancel;
        Settings settings;
        settings.keep_snapshots = config.value("keep_snapshots", false);
        settings.access_seconds = config.value("access_seconds", 4u * 3600u);
        settings.http.insecure = s.insecure;
        settings.http.ca_file = s.ca_file;
        settings.http.timeout_seconds = static_cast<unsigned>(s.timeout.count());
        settings.http.max_attempts = s.max_attempts;
        settings.http.cancel = cancel;
        return std::unique_ptr<ProviderSession>(new AzureSession(std::move(c), std::move(s), std::move(settings)));
    }
};

}  // namespace

std::shared_ptr<const Provider> azure_provider() { return std::make_shared<AzureProvider>(); }

}  // namespace hypersdk::azure
