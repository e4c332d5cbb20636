#include "providers/vsphere/discovery.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace hypersdk::vsphere {
namespace {

std::int64_t to_int(const std::string &s, std::int64_t fallback = 0) {
    if (s.empty()) return fallback;
    char *end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    return end != s.c_str() ? v : fallback;
}

struct ControllerInfo {
    std::string kind, model;
    int bus = 0;
};

// Controller device types and what the model calls them.
std::optional<ControllerInfo> controller_of(const std::string &type) {
    static const std::map<std::string, std::pair<const char *, const char *>> table = {
        {"VirtualLsiLogicController", {"scsi", "lsilogic"}},
        {"VirtualLsiLogicSASController", {"scsi", "lsilogicsas"}},
        {"ParaVirtualSCSIController", {"scsi", "pvscsi"}},
        {"VirtualBusLogicController", {"scsi", "buslogic"}},
        {"VirtualAHCIController", {"sata", "ahci"}},
        {"VirtualIDEController", {"ide", "piix4"}},
        {"VirtualNVMEController", {"nvme", "nvme"}},
    };
    auto it = table.find(type);
    if (it == table.end()) return std::nullopt;
    return ControllerInfo{it->second.first, it->second.second, 0};
}

std::optional<std::string> nic_type_of(const std::string &type) {
    static const std::map<std::string, std::string> table = {
        {"VirtualVmxnet3", "vmxnet3"}, {"VirtualVmxnet3Vrdma", "vmxnet3"}, {"VirtualVmxnet2", "vmxnet2"},
        {"VirtualVmxnet", "vmxnet"},   {"VirtualE1000", "e1000"},          {"VirtualE1000e", "e1000e"},
        {"VirtualPCNet32", "pcnet32"}, {"VirtualSriovEthernetCard", "sriov"},
    };
    auto it = table.find(type);
    if (it == table.end()) return std::nullopt;
    return it->second;
}

std::string lower(std::string s) {
    for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Inventory path components escape '/' as %2f (as SearchIndex expects them).
std::string path_component(const std::string &name) {
    std::string out;
    for (char c : name) {
        if (c == '/') out += "%2f";
        else if (c == '%') out += "%25";
        else out += c;
    }
    return out;
}

}  // namespace

const std::vector<std::string> &vm_property_paths() {
    static const std::vector<std::string> paths = {
        "name", "parent", "runtime.powerState", "config.uuid", "config.instanceUuid", "config.guestId",
        "config.guestFullName", "config.hardware.numCPU", "config.hardware.numCoresPerSocket",
        "config.hardware.memoryMB", "config.hardware.device", "config.firmware", "config.bootOptions", "config.version",
    };
    return paths;
}

std::pair<std::string, std::string> split_datastore_path(const std::string &backing) {
    if (backing.size() > 2 && backing.front() == '[') {
        const auto close = backing.find(']');
        if (close != std::string::npos) {
            std::string rest = backing.substr(close + 1);
            while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
            return {backing.substr(1, close - 1), rest};
        }
    }
    return {"", backing};
}

VirtualMachine vm_from_properties(const ObjectContent &o, const std::string &inventory_path, const NetworkNames &networks) {
    VirtualMachine vm;
    vm.provider = "vsphere";
    vm.id = o.obj.value;
    vm.name = o.text("name");
    vm.inventory_path = inventory_path;
    vm.uuid = o.text("config.uuid");
    vm.instance_uuid = o.text("config.instanceUuid");
    vm.power_state = o.text("runtime.powerState");
    vm.guest_id = o.text("config.guestId");
    vm.guest_os_description = o.text("config.guestFullName");
    vm.cpus = static_cast<int>(std::max<std::int64_t>(1, to_int(o.text("config.hardware.numCPU"), 1)));
    vm.cores_per_socket = static_cast<int>(std::max<std::int64_t>(1, to_int(o.text("config.hardware.numCoresPerSocket"), 1)));
    vm.memory_mib = static_cast<std::uint64_t>(std::max<std::int64_t>(0, to_int(o.text("config.hardware.memoryMB"))));
    vm.firmware = o.text("config.firmware") == "efi" ? Firmware::efi : Firmware::bios;
    vm.hardware_version = o.text("config.version");

    std::map<std::int64_t, int> disk_boot_order;
    if (const xml::Element *boot = o.prop("config.bootOptions")) {
        vm.secure_boot = boot->child_text("efiSecureBootEnabled") == "true";
        int order = 1;
        for (const xml::Element *b : boot->children_named("bootOrder")) {
            if (b->xsi_type() == "VirtualMachineBootOptionsBootableDiskDevice")
                disk_boot_order.emplace(to_int(b->child_text("deviceKey"), -1), order);
            ++order;
        }
    }

    const xml::Element *devices = o.prop("config.hardware.device");
    std::map<std::int64_t, ControllerInfo> controllers;
    if (devices != nullptr) {
        for (const auto &d : devices->children) {
            if (auto c = controller_of(d.xsi_type())) {
                c->bus = static_cast<int>(to_int(d.child_text("busNumber")));
                controllers.emplace(to_int(d.child_text("key"), -1), *c);
            }
        }
        for (const auto &d : devices->children) {
            const std::string type = d.xsi_type();
            const xml::Element *backing = d.child("backing");
            if (type == "VirtualDisk") {
                VmDisk disk;
                disk.id = d.child_text("key");
                if (const xml::Element *info = d.child("deviceInfo")) disk.label = info->child_text("label");
                std::int64_t bytes = to_int(d.child_text("capacityInBytes"), -1);
                if (bytes <= 0) bytes = to_int(d.child_text("capacityInKB")) * 1024;
                disk.capacity_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, bytes));
                if (auto it = controllers.find(to_int(d.child_text("controllerKey"), -1)); it != controllers.end()) {
                    disk.controller = it->second.kind;
                    disk.controller_model = it->second.model;
                    disk.controller_bus = it->second.bus;
                }
                disk.unit = static_cast<int>(to_int(d.child_text("unitNumber")));
                if (backing != nullptr) {
                    disk.backing_file = backing->child_text("fileName");
                    disk.datastore = split_datastore_path(disk.backing_file).first;
                    disk.change_id = backing->child_text("changeId");
                    disk.thin = backing->child_text("thinProvisioned") == "true";
                }
                if (auto it = disk_boot_order.find(to_int(disk.id, -1)); it != disk_boot_order.end()) disk.boot_order = it->second;
                vm.disks.push_back(std::move(disk));
            } else if (auto nic_type = nic_type_of(type)) {
                VmNic nic;
                nic.id = d.child_text("key");
                nic.mac = lower(d.child_text("macAddress"));
                nic.adapter_type = *nic_type;
                if (const xml::Element *conn = d.child("connectable")) nic.connected = conn->child_text("connected") != "false";
                if (backing != nullptr) {
                    if (const xml::Element *port = backing->child("port")) {
                        const std::string key = port->child_text("portgroupKey");
                        auto it = networks.find(key);
                        nic.network = it != networks.end() ? it->second : key;
                    } else if (const xml::Element *net = backing->child("network")) {
                        auto it = networks.find(net->text);
                        nic.network = it != networks.end() ? it->second : backing->child_text("deviceName");
                    } else {
                        nic.network = backing->child_text("deviceName");
                    }
                }
                vm.nics.push_back(std::move(nic));
            }
        }
    }
    // Without an explicit boot order the first disk boots, as vSphere's BIOS does by default.
    if (disk_boot_order.empty() && !vm.disks.empty()) vm.disks.front().boot_order = 1;
    return vm;
}

namespace {

struct Node {
    std::string name;
    MoRef parent;
    std::string type;
};

// Walks parents up to the root folder (which has no name in a path).
std::string path_of(const std::map<std::string, Node> &nodes, const std::string &id) {
    std::vector<std::string> parts;
    std::string cur = id;
    for (int guard = 0; guard < 256; ++guard) {
        auto it = nodes.find(cur);
        if (it == nodes.end()) break;
        parts.push_back(path_component(it->second.name));
        if (it->second.parent.empty()) break;
        cur = it->second.parent.value;
    }
    std::string out;
    for (auto p = parts.rbegin(); p != parts.rend(); ++p) out += "/" + *p;
    return out;
}

}  // namespace

Result<std::vector<VirtualMachine>> discover_all(Session &s) {
    PropertySets props{{"Folder", {"name", "parent"}},
                       {"Datacenter", {"name", "parent"}},
                       {"VirtualMachine", vm_property_paths()},
                       {"HostSystem", {"name"}},
                       {"Network", {"name"}}};
    // The VMs' hosts come along in the same call (a VM list feeds per-host limits of batch runs).
    props["VirtualMachine"].push_back("runtime.host");
    HSDK_TRY(auto objs, retrieve_container(s, s.content().root_folder, props));
    std::map<std::string, std::string> host_names;
    for (const auto &o : objs)
        if (o.obj.type == "HostSystem") host_names[o.obj.value] = o.text("name");
    std::map<std::string, Node> nodes;
    NetworkNames networks;
    std::vector<const ObjectContent *> vms;
    for (const auto &o : objs) {
        if (o.obj.type == "HostSystem") continue;
        if (o.obj.type == "VirtualMachine") vms.push_back(&o);
        if (o.obj.type == "Network" || o.obj.type == "DistributedVirtualPortgroup" || o.obj.type == "OpaqueNetwork") {
            networks[o.obj.value] = o.text("name");
            continue;
        }
        Node n{o.text("name"), {}, o.obj.type};
        if (const xml::Element *p = o.prop("parent")) n.parent = moref_of(*p);
        nodes[o.obj.value] = n;
    }
    std::vector<MoRef> portgroups;
    for (const auto &o : objs)
        if (o.obj.type == "DistributedVirtualPortgroup") portgroups.push_back(o.obj);
    if (!portgroups.empty()) {
        auto pg = retrieve(s, portgroups, PropertySets{{"DistributedVirtualPortgroup", {"key", "name"}}});
        if (pg)
            for (const auto &o : pg.value()) networks[o.text("key")] = o.text("name");
    }
    std::vector<VirtualMachine> out;
    for (const auto *o : vms) {
        out.push_back(vm_from_properties(*o, path_of(nodes, o->obj.value), networks));
        if (const xml::Element *h = o->prop("runtime.host")) out.back().host = host_names[moref_of(*h).value];
    }
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.inventory_path < b.inventory_path; });
    return out;
}

Result<FoundVm> discover_vm(Session &s, const std::string &inventory_path) {
    std::string path = inventory_path;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (path.empty() || path.front() != '/') path = "/" + path;
    HSDK_TRY(MoRef ref, find_by_inventory_path(s, path));
    if (ref.empty()) return fail(Errc::not_found, fmt::format("not found: no VM at inventory path '{}'", inventory_path));
    if (ref.type != "VirtualMachine")
        return fail(Errc::not_found, fmt::format("not found: '{}' is a {}, not a VM", inventory_path, ref.type));
    // One round trip for the VM, its layout, the folders and datacenter above it and its networks.
    auto vm_props = vm_property_paths();
    vm_props.insert(vm_props.end(), {"network", "layoutEx", "parent"});
    PropertySets props{{"VirtualMachine", vm_props},
                       {"ManagedEntity", {"name", "parent"}},
                       {"Network", {"name"}},
                       {"DistributedVirtualPortgroup", {"key", "name"}}};
    HSDK_TRY(auto objs, retrieve_with_ancestors(s, ref, props));
    const ObjectContent *vm_oc = nullptr;
    std::map<std::string, const ObjectContent *> by_ref;
    NetworkNames names;
    for (const auto &o : objs) {
        by_ref[o.obj.type + ":" + o.obj.value] = &o;
        if (o.obj == ref) vm_oc = &o;
        if (o.obj.type == "Network" || o.obj.type == "DistributedVirtualPortgroup" || o.obj.type == "OpaqueNetwork") {
            names[o.obj.value] = o.text("name");
            if (o.obj.type == "DistributedVirtualPortgroup" && !o.text("key").empty()) names[o.text("key")] = o.text("name");
        }
    }
    if (vm_oc == nullptr) return fail(Errc::not_found, fmt::format("not found: {} {} returned no properties", ref.type, ref.value));

    FoundVm found;
    found.ref = ref;
    found.vm = vm_from_properties(*vm_oc, path, names);
    if (const xml::Element *layout = vm_oc->prop("layoutEx")) found.layout = *layout;
    // The datacenter is the first entity above the VM that is a Datacenter; the folders above it
    // (below the root folder) belong to its dcPath.
    auto parent_of = [&](const MoRef &r) -> MoRef {
        auto it = by_ref.find(r.type + ":" + r.value);
        if (it == by_ref.end()) return {};
        const xml::Element *p = it->second->prop("parent");
        return p ? moref_of(*p) : MoRef{};
    };
    auto name_of = [&](const MoRef &r) {
        auto it = by_ref.find(r.type + ":" + r.value);
        return it == by_ref.end() ? std::string() : it->second->text("name");
    };
    MoRef cur = parent_of(ref);
    for (int guard = 0; guard < 256 && !cur.empty(); ++guard) {
        if (cur.type == "Datacenter") {
            found.datacenter = cur;
            found.datacenter_path = name_of(cur);
            for (MoRef up = parent_of(cur); !up.empty() && up != s.content().root_folder; up = parent_of(up))
                found.datacenter_path = name_of(up) + "/" + found.datacenter_path;
            break;
        }
        cur = parent_of(cur);
    }
    return found;
}

}  // namespace hypersdk::vsphere
