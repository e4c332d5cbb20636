// JSON form of the VM model (hyper2kvm and `hsdk vms list --json` read it).
#include <hypersdk/vm.hpp>

#include <fmt/format.h>

namespace hypersdk {

std::string_view firmware_name(Firmware f) noexcept { return f == Firmware::efi ? "efi" : "bios"; }

nlohmann::json to_json(const VirtualMachine &vm) {
    nlohmann::json disks = nlohmann::json::array();
    for (const auto &d : vm.disks) {
        nlohmann::json j{{"id", d.id},
                         {"label", d.label},
                         {"capacity_bytes", d.capacity_bytes},
                         {"controller", d.controller},
                         {"controller_model", d.controller_model},
                         {"controller_bus", d.controller_bus},
                         {"unit", d.unit},
                         {"backing_file", d.backing_file},
                         {"datastore", d.datastore},
                         {"change_id", d.change_id},
                         {"thin", d.thin},
                         {"file", d.file},
                         {"file_format", d.file_format},
                         {"file_bytes", d.file_bytes},
                         {"sha256", d.sha256}};
        j["boot_order"] = d.boot_order ? nlohmann::json(*d.boot_order) : nlohmann::json(nullptr);
        disks.push_back(std::move(j));
    }
    nlohmann::json nics = nlohmann::json::array();
    for (const auto &n : vm.nics)
        nics.push_back({{"id", n.id}, {"mac", n.mac}, {"network", n.network}, {"adapter_type", n.adapter_type}, {"connected", n.connected}});
    return {{"provider", vm.provider},
            {"id", vm.id},
            {"name", vm.name},
            {"inventory_path", vm.inventory_path},
            {"uuid", vm.uuid},
            {"instance_uuid", vm.instance_uuid},
            {"power_state", vm.power_state},
            {"host", vm.host},
            {"guest_id", vm.guest_id},
            {"ovf_os_id", vm.ovf_os_id},
            {"guest_os_description", vm.guest_os_description},
            {"cpus", vm.cpus},
            {"cores_per_socket", vm.cores_per_socket},
            {"memory_mib", vm.memory_mib},
            {"firmware", firmware_name(vm.firmware)},
            {"secure_boot", vm.secure_boot},
            {"hardware_version", vm.hardware_version},
            {"disks", std::move(disks)},
            {"nics", std::move(nics)}};
}

namespace {

// Reads an optional member of the expected type; a member of another type is an error.
template <class T>
Result<void> get(const nlohmann::json &j, const char *key, T &out, const std::string &where) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return success();
    try {
        out = it->get<T>();
    } catch (const nlohmann::json::exception &) {
        return fail(Errc::invalid_argument, fmt::format("VM description: {}{} has the wrong type", where, key));
    }
    return success();
}

}  // namespace

Result<VirtualMachine> vm_from_json(const nlohmann::json &j) {
    if (!j.is_object()) return fail(Errc::invalid_argument, "VM description: expected a JSON object");
    VirtualMachine vm;
    HSDK_TRYV(get(j, "provider", vm.provider, ""));
    HSDK_TRYV(get(j, "id", vm.id, ""));
    HSDK_TRYV(get(j, "name", vm.name, ""));
    HSDK_TRYV(get(j, "inventory_path", vm.inventory_path, ""));
    HSDK_TRYV(get(j, "uuid", vm.uuid, ""));
    HSDK_TRYV(get(j, "instance_uuid", vm.instance_uuid, ""));
    HSDK_TRYV(get(j, "power_state", vm.power_state, ""));
    HSDK_TRYV(get(j, "host", vm.host, ""));
    HSDK_TRYV(get(j, "guest_id", vm.guest_id, ""));
    HSDK_TRYV(get(j, "ovf_os_id", vm.ovf_os_id, ""));
    HSDK_TRYV(get(j, "guest_os_description", vm.guest_os_description, ""));
    HSDK_TRYV(get(j, "cpus", vm.cpus, ""));
    HSDK_TRYV(get(j, "cores_per_socket", vm.cores_per_socket, ""));
    HSDK_TRYV(get(j, "memory_mib", vm.memory_mib, ""));
    HSDK_TRYV(get(j, "secure_boot", vm.secure_boot, ""));
    HSDK_TRYV(get(j, "hardware_version", vm.hardware_version, ""));
    std::string firmware = "bios";
    HSDK_TRYV(get(j, "firmware", firmware, ""));
    if (firmware == "efi" || firmware == "uefi") vm.firmware = Firmware::efi;
    else if (firmware == "bios") vm.firmware = Firmware::bios;
    else return fail(Errc::invalid_argument, fmt::format("VM description: unknown firmware '{}'", firmware));
    if (vm.cpus < 1 || vm.cpus > 4096) return fail(Errc::invalid_argument, fmt::format("VM description: cpus {} out of range", vm.cpus));
    if (vm.cores_per_socket < 1 || vm.cores_per_socket > vm.cpus || vm.cpus % vm.cores_per_socket != 0)
        return fail(Errc::invalid_argument,
                    fmt::format("VM description: cores_per_socket {} does not divide cpus {}", vm.cores_per_socket, vm.cpus));
    if (vm.memory_mib > (16ULL << 20)) return fail(Errc::invalid_argument, "VM description: memory_mib beyond 16 TiB");
    if (auto it = j.find("disks"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return fail(Errc::invalid_argument, "VM description: disks must be an array");
        for (std::size_t i = 0; i < it->size(); ++i) {
            const auto &dj = (*it)[i];
            if (!dj.is_object()) return fail(Errc::invalid_argument, fmt::format("VM description: disks[{}] must be an object", i));
            const std::string where = fmt::format("disks[{}].", i);
            VmDisk d;
            HSDK_TRYV(get(dj, "id", d.id, where));
            HSDK_TRYV(get(dj, "label", d.label, where));
            HSDK_TRYV(get(dj, "capacity_bytes", d.capacity_bytes, where));
            HSDK_TRYV(get(dj, "controller", d.controller, where));
            HSDK_TRYV(get(dj, "controller_model", d.controller_model, where));
            HSDK_TRYV(get(dj, "controller_bus", d.controller_bus, where));
            HSDK_TRYV(get(dj, "unit", d.unit, where));
            HSDK_TRYV(get(dj, "backing_file", d.backing_file, where));
            HSDK_TRYV(get(dj, "datastore", d.datastore, where));
            HSDK_TRYV(get(dj, "change_id", d.change_id, where));
            HSDK_TRYV(get(dj, "thin", d.thin, where));
            HSDK_TRYV(get(dj, "file", d.file, where));
            HSDK_TRYV(get(dj, "file_format", d.file_format, where));
            HSDK_TRYV(get(dj, "file_bytes", d.file_bytes, where));
            HSDK_TRYV(get(dj, "sha256", d.sha256, where));
            int boot = 0;
            HSDK_TRYV(get(dj, "boot_order", boot, where));
            if (boot > 0) d.boot_order = boot;
            vm.disks.push_back(std::move(d));
        }
    }
    if (auto it = j.find("nics"); it != j.end() && !it->is_null()) {
        if (!it->is_array()) return fail(Errc::invalid_argument, "VM description: nics must be an array");
        for (std::size_t i = 0; i < it->size(); ++i) {
            const auto &nj = (*it)[i];
            if (!nj.is_object()) return fail(Errc::invalid_argument, fmt::format("VM description: nics[{}] must be an object", i));
            const std::string where = fmt::format("nics[{}].", i);
            VmNic n;
            HSDK_TRYV(get(nj, "id", n.id, where));
            HSDK_TRYV(get(nj, "mac", n.mac, where));
            HSDK_TRYV(get(nj, "network", n.network, where));
            HSDK_TRYV(get(nj, "adapter_type", n.adapter_type, where));
            HSDK_TRYV(get(nj, "connected", n.connected, where));
            vm.nics.push_back(std::move(n));
        }
    }
    return vm;
}

}  // namespace hypersdk
