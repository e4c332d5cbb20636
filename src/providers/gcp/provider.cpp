// The "gcp" provider: Compute Engine instances found in one zone or all of them (paged), machine
// types to vCPUs and memory (custom types read from their names), disks with their boot flag and
// interface, UEFI / Shielded VM, NICs; the connection config and its credentials.
#include "providers/gcp/session.hpp"

#include "providers/builtin.hpp"
#include "providers/config_secret.hpp"
#include "core/json_fields.hpp"
#include "core/env.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

namespace hypersdk::gcp {
namespace {

using json = nlohmann::json;
using json_fields::str;
using json_fields::u64;
constexpr std::uint64_t GiB = 1ull << 30;

using core::env;

std::string last_segment(const std::string &url) { return url.substr(url.rfind('/') + 1); }

// "custom-4-8192", "n2-custom-2-4096", "n2d-custom-8-16384-ext": vCPUs and MiB from the name.
std::optional<std::pair<int, std::uint64_t>> custom_type(const std::string &type) {
    const auto at = type.find("custom-");
    if (at == std::string::npos) return std::nullopt;
    const std::string rest = type.substr(at + 7);
    char *end = nullptr;
    const long cpus = std::strtol(rest.c_str(), &end, 10);
    if (end == rest.c_str() || *end != '-') return std::nullopt;
    const char *mem_at = end + 1;
    const long long mib = std::strtoll(mem_at, &end, 10);
    if (end == mem_at || cpus <= 0 || mib <= 0) return std::nullopt;
    return std::pair{static_cast<int>(cpus), static_cast<std::uint64_t>(mib)};
}

}  // namespace

Result<std::pair<int, std::uint64_t>> GcpSession::machine_type(const std::string &zone, const std::string &type) {
    if (auto c = custom_type(type)) return *c;
    const std::string key = zone + "/" + type;
    if (auto it = machine_types_.find(key); it != machine_types_.end()) return it->second;
    HSDK_TRY(auto mt, api_->compute("GET", fmt::format("/zones/{}/machineTypes/{}", zone, type), nullptr, "Compute get machine type " + type));
    const std::pair<int, std::uint64_t> found{static_cast<int>(u64(mt, "guestCpus")), u64(mt, "memoryMb")};
    machine_types_[key] = found;
    return found;
}

Result<json> GcpSession::find_instance(const std::string &vm) {
    std::string zone = settings_.zone, name = vm;
    if (auto slash = vm.find('/'); slash != std::string::npos) {
        zone = vm.substr(0, slash);
        name = vm.substr(slash + 1);
        if (zone.rfind("zones/", 0) == 0) zone = zone.substr(6);
    }
    if (!zone.empty()) {
        auto got = api_->compute("GET", fmt::format("/zones/{}/instances/{}", zone, name), nullptr, "Compute get instance " + name);
        if (!got && got.error().code == Errc::not_found)
            return fail(Errc::not_found, fmt::format("no Compute Engine instance '{}' in zone {} of project {}", name, zone, api_->project()));
        return got;
    }
    HSDK_TRY(auto all, api_->compute_list("/aggregated/instances", "instances", "Compute list instances"));
    std::vector<json> named;
    for (auto &i : all)
        if (str(i, "name") == name || str(i, "id") == name) named.push_back(std::move(i));
    if (named.empty()) return fail(Errc::not_found, fmt::format("no Compute Engine instance '{}' in project {}", name, api_->project()));
    if (named.size() > 1) {
        std::string zones;
        for (const auto &i : named) zones += (zones.empty() ? "" : ", ") + last_segment(str(i, "zone"));
        return fail(Errc::conflict, fmt::format("{} instances are named '{}' (zones {}): name one as ZONE/NAME or set the zone", named.size(), name, zones));
    }
    return std::move(named.front());
}

Result<VirtualMachine> GcpSession::to_vm(const json &i) {
    VirtualMachine vm;
    vm.provider = "gcp";
    vm.id = str(i, "id");
    vm.name = str(i, "name");
    const std::string zone = last_segment(str(i, "zone"));
    vm.inventory_path = fmt::format("/{}/{}/{}", api_->project(), zone, vm.name);
    const std::string status = str(i, "status");
    vm.power_state = status == "RUNNING" ? "poweredOn" : status == "SUSPENDED" ? "suspended" : "poweredOff";
    const std::string type = last_segment(str(i, "machineType"));
    vm.hardware_version = "gce-" + type;
    HSDK_TRY(auto shape, machine_type(zone, type));
    vm.cpus = std::max(1, shape.first);
    vm.memory_mib = shape.second;
    const json shielded = i.value("shieldedInstanceConfig", json::object());
    vm.secure_boot = shielded.is_object() && shielded.value("enableSecureBoot", false);
    bool uefi = vm.secure_boot;
    std::string os_hint;
    std::vector<json> disks;
    for (const auto &d : i.value("disks", json::array())) disks.push_back(d);
    std::stable_sort(disks.begin(), disks.end(), [](const json &a, const json &b) { return a.value("boot", false) && !b.value("boot", false); });
    int unit = 0;
    for (const auto &d : disks) {
        VmDisk out;
        const std::string source = str(d, "source");
        if (source.empty())
            return fail(Errc::unsupported, fmt::format("unsupported: disk '{}' of {} is not a persistent disk (type {})", str(d, "deviceName"), vm.name,
                                                       str(d, "type")));
        // "projects/P/zones/Z/disks/D" whatever host the URL names.
        const auto p = source.find("projects/");
        out.id = p == std::string::npos ? source : source.substr(p);
        out.label = fmt::format("{} {}", d.value("boot", false) ? "boot disk" : "disk", str(d, "deviceName"));
        std::uint64_t gb = u64(d, "diskSizeGb");
        if (gb == 0) {
            HSDK_TRY(auto disk, api_->compute("GET", source, nullptr, "Compute get disk " + last_segment(source)));
            gb = u64(disk, "sizeGb");
        }
        out.capacity_bytes = gb * GiB;
        const std::string iface = str(d, "interface");
        out.controller = iface == "NVME" ? "nvme" : "scsi";
        out.controller_model = iface == "NVME" ? "" : "virtio-scsi";
        out.unit = unit++;
        out.backing_file = out.id;
        out.datastore = zone;
        out.file_format = settings_.export_format.empty() ? "raw" : settings_.export_format;
        if (d.value("boot", false)) out.boot_order = 1;
        for (const auto &f : d.value("guestOsFeatures", json::array())) {
            const std::string t = str(f, "type");
            if (t == "UEFI_COMPATIBLE") uefi = true;
            if (t == "WINDOWS") os_hint = "Windows";
        }
        if (d.value("boot", false))
            for (const auto &l : d.value("licenses", json::array()))
                if (l.is_string() && l.get<std::string>().find("windows") != std::string::npos) os_hint = "Windows";
        vm.disks.push_back(std::move(out));
    }
    vm.firmware = uefi ? Firmware::efi : Firmware::bios;
    vm.guest_id = os_hint == "Windows" ? "windows2019srv_64Guest" : "otherLinux64Guest";
    vm.guest_os_description = os_hint.empty() ? "Linux" : os_hint;
    for (const auto &n : i.value("networkInterfaces", json::array())) {
        VmNic nic;
        nic.id = str(n, "name");
        nic.network = last_segment(str(n, "network"));
        nic.adapter_type = str(n, "nicType") == "GVNIC" ? "gvnic" : "virtio";
        vm.nics.push_back(std::move(nic));  // Compute Engine does not say the MAC address
    }
    return vm;
}

Result<std::vector<VirtualMachine>> GcpSession::list_vms(const VmFilter &filter) {
    std::vector<json> all;
    if (!settings_.zone.empty()) {
        HSDK_TRY(all, api_->compute_list(fmt::format("/zones/{}/instances", settings_.zone), "instances", "Compute list instances"));
    } else {
        HSDK_TRY(all, api_->compute_list("/aggregated/instances", "instances", "Compute list instances"));
    }
    std::vector<VirtualMachine> out;
    for (const auto &i : all) {
        if (!filter.name_contains.empty() && str(i, "name").find(filter.name_contains) == std::string::npos) continue;
        HSDK_TRY(auto vm, to_vm(i));
        out.push_back(std::move(vm));
    }
    return out;
}

Result<VirtualMachine> GcpSession::describe(const std::string &vm) {
    HSDK_TRY(auto i, find_instance(vm));
    return to_vm(i);
}

namespace {

class GcpProvider final : public Provider {
public:
    std::string name() const override { return "gcp"; }
    std::string description() const override {
        return "Google Compute Engine: instances exported through an image of each disk and Cloud Build's image export to "
               "Cloud Storage, the object streamed into the target format";
    }
    std::uint32_t capabilities() const override {
        using C = ProviderCapability;
        return static_cast<std::uint32_t>(C::list) | static_cast<std::uint32_t>(C::describe) | static_cast<std::uint32_t>(C::native_export);
    }
    json config_schema() const override { return {{"$ref", "common.json#/definitions/gcp_connection"}}; }

    Result<std::unique_ptr<ProviderSession>> connect(const json &config, const CancelToken &cancel) const override {
        cloud::gcp::CredentialsInput in;
        HSDK_TRY(in.access_token, config_secret(config, "access_token"));
        in.credentials_file = str(config, "credentials_file");
        in.token_uri = str(config, "token_uri");
        in.metadata_host = str(config, "metadata_host");
        HSDK_TRY(auto credentials, cloud::gcp::resolve_credentials(in));
        std::string project = str(config, "project");
        if (project.empty()) project = env("GOOGLE_CLOUD_PROJECT");
        if (project.empty()) project = env("CLOUDSDK_CORE_PROJECT");
        if (project.empty()) project = credentials.project_id;
        cloud::gcp::ApiSettings s;
        s.rest.insecure = config.value("insecure", false);
        s.rest.ca_file = str(config, "ca_file");
        s.rest.max_attempts = config.value("max_attempts", 8u);
        s.rest.timeout = std::chrono::seconds(config.value("timeout", 60u));
        s.rest.cancel = cancel;
        auto tokens = std::make_shared<cloud::gcp::TokenSource>(std::move(credentials), s.rest);
        if (project.empty() && tokens->credentials().kind == cloud::gcp::Credentials::Kind::metadata) {
            HSDK_TRY(project, tokens->metadata_project());
        }
        if (project.empty())
            return fail(Errc::invalid_argument, "no Google Cloud project: give 'project' (or GOOGLE_CLOUD_PROJECT, or a service-account key naming one)");
        if (auto e = str(config, "compute_endpoint"); !e.empty()) s.endpoints.compute = e;
        if (auto e = str(config, "cloudbuild_endpoint"); !e.empty()) s.endpoints.cloudbuild = e;
        s.endpoints.storage = cloud::gcp::storage_endpoint(str(config, "storage_endpoint"));
        s.poll_interval = std::chrono::milliseconds(config.value("poll_interval_ms", 2000u));
        Settings settings;
        settings.zone = str(config, "zone");
        if (settings.zone.empty()) settings.zone = env("CLOUDSDK_COMPUTE_ZONE");
        settings.bucket = str(config, "bucket");
        if (config.contains("object_prefix") && config["object_prefix"].is_string()) settings.object_prefix = str(config, "object_prefix");
        settings.export_format = str(config, "export_format");
        static const char *formats[] = {"", "vmdk", "vhdx", "vpc", "vdi", "qcow2"};
        if (std::find(std::begin(formats), std::end(formats), settings.export_format) == std::end(formats))
            return fail(Errc::invalid_argument, fmt::format("export_format '{}': the image export writes vmdk, vhdx, vpc, vdi or qcow2 "
                                                            "(or, when none is given, a tar.gz of disk.raw)",
                                                            settings.export_format));
        settings.keep_exports = config.value("keep_exports", false);
        settings.build_timeout = std::chrono::seconds(config.value("build_timeout", 7200u));
        settings.http.insecure = s.rest.insecure;
        settings.http.ca_file = s.rest.ca_file;
        settings.http.timeout_seconds = static_cast<unsigned>(s.rest.timeout.count());
        settings.http.max_attempts = s.rest.max_attempts;
        settings.http.cancel = cancel;
        log(LogLevel::debug, fmt::format("gcp: project {}, credentials from {}, Compute at {}, Storage at {}", project,
                                         tokens->credentials().source, s.endpoints.compute, s.endpoints.storage));
        auto api = std::make_shared<cloud::gcp::Api>(std::move(tokens), s, project);
        return std::unique_ptr<ProviderSession>(new GcpSession(std::move(api), std::move(settings)));
    }
};

}  // namespace

std::shared_ptr<const Provider> gcp_provider() { return std::make_shared<GcpProvider>(); }

}  // namespace hypersdk::gcp
