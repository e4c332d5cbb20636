// The "openstack" provider: servers found through Nova (paged by servers_links), flavors to vCPUs,
// memory and root disk, attached Cinder volumes (the boot volume first), ports with their MACs;
// the connection settings as openstacksdk reads them (config, clouds.yaml, OS_* variables).
#include "providers/openstack/session.hpp"

#include "providers/builtin.hpp"
#include "providers/config_secret.hpp"
#include "core/json_fields.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::openstack {
namespace {

using json = nlohmann::json;
using json_fields::str;
using json_fields::u64;
namespace http = io::http;
constexpr std::uint64_t GiB = 1ull << 30;

bool looks_like_uuid(const std::string &s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-')) return false;
        if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

std::string regex_escape(const std::string &s) {
    std::string out;
    for (char c : s) {
        if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) out += '\\';
        out += c;
    }
    return out;
}

}  // namespace

Result<std::string> OpenStackSession::endpoint(const char *type) {
    if (std::string_view(type) == "volume") return keystone_->endpoint({"volumev3", "block-storage", "volume"});
    return keystone_->endpoint({type});
}

Result<json> OpenStackSession::nova(const std::string &method, const std::string &path, const json &body, const std::string &what) {
    std::string url = path;
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        HSDK_TRY(auto base, endpoint("compute"));
        url = base + path;
    }
    return client_->call(method, url, body, what,
                         {fmt::format("OpenStack-API-Version: compute {}", nova_microversion),
                          fmt::format("X-OpenStack-Nova-API-Version: {}", nova_microversion)});
}

Result<json> OpenStackSession::find_server(const std::string &vm) {
    if (looks_like_uuid(vm)) {
        auto got = nova("GET", "/servers/" + vm, nullptr, "Nova get server " + vm);
        if (got) return std::move(got).value().value("server", json::object());
        if (got.error().code != Errc::not_found) return fail(got.error());
    }
    HSDK_TRY(auto page, nova("GET", "/servers/detail?name=" + http::percent_encode("^" + regex_escape(vm) + "$", false), nullptr,
                             "Nova find server " + vm));
    std::vector<json> named;
    for (const auto &s : page.value("servers", json::array()))
        if (str(s, "name") == vm) named.push_back(s);
    if (named.empty()) return fail(Errc::not_found, fmt::format("no OpenStack server named '{}'", vm));
    if (named.size() > 1) {
        std::string ids;
        for (const auto &s : named) ids += (ids.empty() ? "" : ", ") + str(s, "id");
        return fail(Errc::conflict, fmt::format("{} servers are named '{}' ({}): name one by its id", named.size(), vm, ids));
    }
    return named.front();
}

Result<VirtualMachine> OpenStackSession::to_vm(const json &s) {
    VirtualMachine vm;
    vm.provider = "openstack";
    vm.id = str(s, "id");
    vm.name = str(s, "name");
    vm.uuid = vm.id;
    const std::string az = str(s, "OS-EXT-AZ:availability_zone");
    vm.inventory_path = fmt::format("/{}/{}", az.empty() ? "nova" : az, vm.name);
    const std::string status = str(s, "status");
    vm.power_state = status == "ACTIVE" ? "poweredOn" : status == "SUSPENDED" ? "suspended" : "poweredOff";
    json flavor = s.value("flavor", json::object());
    if (!flavor.contains("vcpus") && !str(flavor, "id").empty()) {
        HSDK_TRY(auto f, nova("GET", "/flavors/" + str(flavor, "id"), nullptr, "Nova get flavor " + str(flavor, "id")));
        flavor = f.value("flavor", json::object());
    }
    vm.cpus = std::max<int>(1, static_cast<int>(u64(flavor, "vcpus")));
    vm.memory_mib = u64(flavor, "ram");
    const std::string flavor_name = !str(flavor, "original_name").empty() ? str(flavor, "original_name") : str(flavor, "name");
    vm.hardware_version = "openstack-" + flavor_name;
    vm.guest_id = "otherLinux64Guest";
    const json image = s.contains("image") ? s["image"] : json();
    const bool image_backed = image.is_object() && !str(image, "id").empty();
    if (image_backed) {
        VmDisk root;
        root.id = "root";
        root.label = "root disk";
        root.capacity_bytes = u64(flavor, "disk") * GiB;
        root.controller = "virtio";
        root.backing_file = "image " + str(image, "id");
        root.file_format = "raw";
        root.boot_order = 1;
        vm.disks.push_back(std::move(root));
        // The firmware and OS the server's image says (hw_firmware_type, os_type); the image may
        // be gone since, which leaves the defaults.
        HSDK_TRY(auto glance, endpoint("image"));
        auto img = client_->call("GET", fmt::format("{}/v2/images/{}", glance, str(image, "id")), nullptr, "Glance get image " + str(image, "id"));
        if (img) {
            if (str(img.value(), "hw_firmware_type") == "uefi") vm.firmware = Firmware::efi;
            if (str(img.value(), "os_type") == "windows") vm.guest_id = "windows2019srv_64Guest";
        } else if (img.error().code != Errc::not_found) {
            return fail(img.error());
        }
    }
    // Attached volumes, the boot volume (or the first device) first.
    struct Attached {
        std::string id, device;
        std::uint64_t size = 0;
        bool bootable = false;
        std::string name;
    };
    std::vector<Attached> volumes;
    const json attached = s.value("os-extended-volumes:volumes_attached", json::array());
    if (!attached.empty()) {
        HSDK_TRY(auto base, endpoint("volume"));
        for (const auto &a : attached) {
            const std::string id = str(a, "id");
            HSDK_TRY(auto v, client_->call("GET", base + "/volumes/" + id, nullptr, "Cinder get volume " + id));
            const json vol = v.value("volume", json::object());
            Attached out{id, "", u64(vol, "size") * GiB, str(vol, "bootable") == "true", str(vol, "name")};
            for (const auto &at : vol.value("attachments", json::array()))
                if (str(at, "server_id") == vm.id) out.device = str(at, "device");
            volumes.push_back(std::move(out));
        }
        std::stable_sort(volumes.begin(), volumes.end(), [&](const Attached &a, const Attached &b) {
            if (!image_backed && a.bootable != b.bootable) return a.bootable;
            return a.device < b.device;
        });
    }
    int unit = image_backed ? 1 : 0;
    for (const auto &v : volumes) {
        VmDisk d;
        d.id = v.id;
        d.label = fmt::format("volume {}{}", v.name.empty() ? v.id : v.name, v.device.empty() ? "" : " (" + v.device + ")");
        d.capacity_bytes = v.size;
        d.controller = "virtio";
        d.unit = unit++;
        d.backing_file = "volume " + v.id;
        d.file_format = "raw";
        if (!image_backed && vm.disks.empty()) d.boot_order = 1;
        vm.disks.push_back(std::move(d));
    }
    HSDK_TRY(auto ports, nova("GET", "/servers/" + vm.id + "/os-interface", nullptr, "Nova list ports of " + vm.name));
    for (const auto &p : ports.value("interfaceAttachments", json::array())) {
        VmNic nic;
        nic.id = str(p, "port_id");
        std::string mac = str(p, "mac_addr");
        std::transform(mac.begin(), mac.end(), mac.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        nic.mac = mac;
        nic.network = str(p, "net_id");
        nic.adapter_type = "virtio";
        vm.nics.push_back(std::move(nic));
    }
    return vm;
}

Result<std::vector<VirtualMachine>> OpenStackSession::list_vms(const VmFilter &filter) {
    std::vector<json> servers;
    std::string next = "/servers/detail";
    for (int pages = 0; !next.empty() && pages < 100000; ++pages) {
        HSDK_TRY(auto page, nova("GET", next, nullptr, "Nova list servers"));
        for (const auto &s : page.value("servers", json::array())) servers.push_back(s);
        next.clear();
        for (const auto &l : page.value("servers_links", json::array()))
            if (str(l, "rel") == "next") next = str(l, "href");
    }
    std::vector<VirtualMachine> out;
    for (const auto &s : servers) {
        if (!filter.name_contains.empty() && str(s, "name").find(filter.name_contains) == std::string::npos) continue;
        HSDK_TRY(auto vm, to_vm(s));
        out.push_back(std::move(vm));
    }
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.name < b.name; });
    return out;
}

Result<VirtualMachine> OpenStackSession::describe(const std::string &vm) {
    HSDK_TRY(auto s, find_server(vm));
    return to_vm(s);
}

namespace {

class OpenStackProvider final : public Provider {
public:
    std::string name() const override { return "openstack"; }
    std::string description() const override {
        return "OpenStack: servers exported through Glance images of ours (Nova createImage, Cinder upload-to-image for volumes), "
               "the image data read into the target format with its checksums verified";
    }
    std::uint32_t capabilities() const override {
        using C = ProviderCapability;
        return static_cast<std::uint32_t>(C::list) | static_cast<std::uint32_t>(C::describe) | static_cast<std::uint32_t>(C::native_export);
    }
    json config_schema() const override { return {{"$ref", "common.json#/definitions/openstack_connection"}}; }

    Result<std::unique_ptr<ProviderSession>> connect(const json &config, const CancelToken &cancel) const override {
        cloud::openstack::AuthSettings given;
        given.auth_url = str(config, "auth_url");
        given.username = str(config, "username");
        given.user_id = str(config, "user_id");
        HSDK_TRY(given.password, config_secret(config, "password"));
        given.user_domain_name = str(config, "user_domain_name");
        given.project_name = str(config, "project_name");
        given.project_id = str(config, "project_id");
        given.project_domain_name = str(config, "project_domain_name");
        given.application_credential_id = str(config, "application_credential_id");
        HSDK_TRY(given.application_credential_secret, config_secret(config, "application_credential_secret"));
        given.region_name = str(config, "region_name");
        if (auto i = str(config, "interface"); !i.empty()) given.interface = i;
        given.cacert = str(config, "cacert");
        given.insecure = config.value("insecure", false);
        HSDK_TRY(auto settings, cloud::openstack::resolve_auth(given, str(config, "cloud")));
        cloud::RestSettings rest;
        rest.insecure = settings.insecure;
        rest.ca_file = settings.cacert;
        rest.max_attempts = config.value("max_attempts", 8u);
        rest.timeout = std::chrono::seconds(config.value("timeout", 60u));
        rest.cancel = cancel;
        Settings s;
        s.keep_images = config.value("keep_images", false);
        s.poll_interval = std::chrono::milliseconds(config.value("poll_interval_ms", 2000u));
        s.image_timeout = std::chrono::seconds(config.value("image_timeout", 3600u));
        s.http.insecure = rest.insecure;
        s.http.ca_file = rest.ca_file;
        s.http.timeout_seconds = static_cast<unsigned>(rest.timeout.count());
        s.http.max_attempts = rest.max_attempts;
        s.http.cancel = cancel;
        log(LogLevel::debug, fmt::format("openstack: Keystone at {} ({}), region {}, interface {}", http::redact_url(settings.auth_url),
                                         settings.source, settings.region_name.empty() ? "any" : settings.region_name, settings.interface));
        auto keystone = std::make_shared<cloud::openstack::Keystone>(std::move(settings), rest);
        auto client = cloud::openstack::service_client(keystone, rest);
        return std::unique_ptr<ProviderSession>(new OpenStackSession(std::move(keystone), std::move(client), std::move(s)));
    }
};

}  // namespace

std::shared_ptr<const Provider> openstack_provider() { return std::make_shared<OpenStackProvider>(); }

}  // namespace hypersdk::openstack
