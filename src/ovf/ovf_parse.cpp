// OVF descriptor -> VirtualMachine. Reads what vCenter/ovftool, VirtualBox and OVF 2.x producers write.
#include <hypersdk/ovf.hpp>

#include "io/file.hpp"
#include "ovf/ovf_units.hpp"
#include "xml/xml_tree.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace hypersdk {
namespace {

constexpr std::string_view ns_ovf1 = "http://schemas.dmtf.org/ovf/envelope/1";
constexpr std::string_view ns_ovf2 = "http://schemas.dmtf.org/ovf/envelope/2";
constexpr std::string_view ns_vbox = "http://www.virtualbox.org/ovf/machine";

constexpr std::uint64_t max_disk_bytes = 256ULL << 40;  // VMDK tops out at 62 TiB; anything above is hostile
constexpr std::uint64_t max_memory_mib = 24ULL << 20;   // 24 TiB, the largest VM any platform offers
constexpr int max_cpus = 4096;

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// A hardware Item (Item, EthernetPortItem, StorageItem): the texts of its children by local name.
struct HwItem {
    std::map<std::string, std::string> fields;
    const xml::Element *element = nullptr;
    std::string get(const std::string &k) const {
        auto it = fields.find(k);
        return it == fields.end() ? std::string() : it->second;
    }
    std::string name() const {
        auto n = get("ElementName");
        return n.empty() ? get("Caption") : n;
    }
};

HwItem read_item(const xml::Element &e) {
    HwItem item;
    item.element = &e;
    for (const auto &c : e.children) {
        std::string key = c.local;
        if (key == "InstanceId") key = "InstanceID";  // VirtualBox spells it so in older exports
        item.fields.emplace(key, xml::trim(c.text));
    }
    return item;
}

std::string disk_format_from_uri(std::string_view uri) {
    const std::string u = lower(std::string(uri));
    if (u.find("vmdk") != std::string::npos) return "vmdk";
    if (u.find("qcow") != std::string::npos) return "qcow2";
    if (u.find("vhdx") != std::string::npos) return "vhdx";
    if (u.find("vhd") != std::string::npos) return "vhd";
    if (u.find("vdi") != std::string::npos) return "vdi";
    if (u.find("raw") != std::string::npos) return "raw";
    return "";
}

std::string nic_model(std::string_view subtype) {
    const std::string s = lower(std::string(subtype));
    if (s.find("vmxnet3") != std::string::npos) return "vmxnet3";
    if (s.find("vmxnet2") != std::string::npos) return "vmxnet2";
    if (s.find("vmxnet") != std::string::npos) return "vmxnet";
    if (s == "e1000e") return "e1000e";
    if (s.find("e1000") != std::string::npos || s.find("82540") != std::string::npos || s.find("82545") != std::string::npos)
        return "e1000";
    if (s.find("pcnet") != std::string::npos || s.find("am79c97") != std::string::npos) return "pcnet32";
    if (s.find("virtio") != std::string::npos) return "virtio";
    return s;
}

struct Controller {
    std::string kind;   // ide, scsi, sata, nvme
    std::string model;  // lsilogic, pvscsi, ahci, piix4, ...
    int bus = 0;
    std::size_t order = 0;
};

Result<Controller> controller_of(const HwItem &item, int resource_type) {
    Controller c;
    const std::string sub = lower(item.get("ResourceSubType"));
    switch (resource_type) {
    case 5:
        c.kind = "ide";
        c.model = sub.empty() ? "piix4" : sub;
        break;
    case 6:
        c.kind = "scsi";
        if (sub == "virtualscsi" || sub == "pvscsi") c.model = "pvscsi";
        else if (sub.empty()) c.model = "lsilogic";
        else c.model = sub;
        break;
    case 20:
        if (sub.find("nvme") != std::string::npos) {
            c.kind = "nvme";
            c.model = "nvme";
        } else {
            c.kind = "sata";
            c.model = "ahci";
        }
        break;
    default: c.kind = "other";
    }
    const auto addr = item.get("Address");
    if (!addr.empty()) {
        auto bus = ovf::parse_unsigned(addr, "controller address");
        if (bus && bus.value() < 64) c.bus = static_cast<int>(bus.value());
    }
    return c;
}

bool truthy(std::string_view v) {
    const std::string s = lower(std::string(v));
    return s == "true" || s == "1" || s == "yes";
}

// vmw:Config / vmw:ExtraConfig key-value pairs anywhere in the hardware section.
void read_vmware_config(const xml::Element &hw, VirtualMachine &vm) {
    for (const auto &c : hw.children) {
        if (c.local != "Config" && c.local != "ExtraConfig") continue;
        const auto key = c.attr("key");
        const auto value = c.attr("value");
        if (!key || !value) continue;
        if (*key == "firmware") vm.firmware = lower(std::string(*value)) == "efi" ? Firmware::efi : Firmware::bios;
        if (*key == "bootOptions.efiSecureBootEnabled" || *key == "uefi.secureBoot.enabled") vm.secure_boot = truthy(*value);
    }
}

// VirtualBox keeps firmware and MAC addresses in its own vbox:Machine section.
void read_virtualbox_machine(const xml::Element &vs, VirtualMachine &vm, std::vector<std::string> &macs) {
    const xml::Element *machine = vs.child("Machine", ns_vbox);
    if (machine == nullptr) return;
    if (const xml::Element *hw = machine->child("Hardware")) {
        if (const xml::Element *fw = hw->child("Firmware")) {
            if (auto t = fw->attr("type"); t && lower(std::string(*t)).rfind("efi", 0) == 0) vm.firmware = Firmware::efi;
        }
        if (const xml::Element *net = hw->child("Network")) {
            std::vector<std::pair<int, std::string>> adapters;
            for (const auto *a : net->children_named("Adapter")) {
                if (auto enabled = a->attr("enabled"); enabled && !truthy(*enabled)) continue;
                int slot = 0;
                if (auto s = a->attr("slot")) {
                    auto v = ovf::parse_unsigned(*s, "adapter slot");
                    if (v && v.value() < 64) slot = static_cast<int>(v.value());
                }
                std::string mac;
                if (auto m = a->attr("MACAddress")) mac = ovf::normalize_mac(*m).value_or("");
                adapters.emplace_back(slot, mac);
            }
            std::sort(adapters.begin(), adapters.end());
            for (auto &[slot, mac] : adapters) macs.push_back(mac);
        }
    }
}

// Who wrote it, from the vendor namespaces its elements and attributes use.
std::string producer_of(const xml::Element &root) {
    constexpr std::string_view ns_vmw = "http://www.vmware.com/schema/ovf";
    bool vmware = false, vbox = false;
    std::vector<const xml::Element *> pending{&root};
    while (!pending.empty() && !vbox) {
        const auto *e = pending.back();
        pending.pop_back();
        vmware = vmware || e->ns == ns_vmw;
        vbox = vbox || e->ns == ns_vbox;
        for (const auto &a : e->attributes) {
            vmware = vmware || a.ns == ns_vmw;
            vbox = vbox || a.ns == ns_vbox;
        }
        for (const auto &c : e->children) pending.push_back(&c);
    }
    return vbox ? "virtualbox" : (vmware ? "vmware" : "generic");
}

}  // namespace

Result<OvfDescriptor> parse_ovf(std::string_view text, std::string_view what, const OvfParseOptions &options) {
    HSDK_TRY(auto root, xml::parse(text, what));
    OvfDescriptor d;
    if (root.local != "Envelope" || (root.ns != ns_ovf1 && root.ns != ns_ovf2))
        return fail_corrupt(fmt::format("{}: not an OVF envelope (root element '{}' in namespace '{}')", what, root.local, root.ns));
    d.ovf_version = root.ns == ns_ovf2 ? "2.x" : "1.x";
    d.producer = producer_of(root);

    // References
    if (const auto *refs = root.child("References")) {
        for (const auto *f : refs->children_named("File")) {
            OvfFileRef r;
            r.id = std::string(f->attr("id").value_or(""));
            r.href = std::string(f->attr("href").value_or(""));
            if (r.id.empty() || r.href.empty()) return fail_corrupt(fmt::format("{}: File element at line {} lacks id or href", what, f->line));
            if (auto s = f->attr("size")) {
                HSDK_TRY(auto v, ovf::parse_unsigned(*s, fmt::format("{}: size of file '{}'", what, r.id)));
                r.size = v;
            }
            r.compression = std::string(f->attr("compression").value_or(""));
            if (std::any_of(d.files.begin(), d.files.end(), [&](const OvfFileRef &x) { return x.id == r.id; }))
                return fail_corrupt(fmt::format("{}: file id '{}' is defined twice", what, r.id));
            d.files.push_back(std::move(r));
        }
    }
    // Disks
    const xml::Element *disk_section = root.child("DiskSection");
    if (disk_section == nullptr) disk_section = root.child("VirtualDiskSection");
    if (disk_section != nullptr) {
        for (const auto *e : disk_section->children_named("Disk")) {
            OvfDiskRef disk;
            disk.disk_id = std::string(e->attr("diskId").value_or(""));
            if (disk.disk_id.empty()) return fail_corrupt(fmt::format("{}: Disk at line {} has no diskId", what, e->line));
            disk.file_ref = std::string(e->attr("fileRef").value_or(""));
            disk.format_uri = std::string(e->attr("format").value_or(""));
            const auto cap = e->attr("capacity");
            if (!cap) return fail_corrupt(fmt::format("{}: disk '{}' has no capacity", what, disk.disk_id));
            if (cap->find("${") != std::string_view::npos)
                return fail_unsupported(fmt::format("{}: disk '{}' takes its capacity from a property ({})", what, disk.disk_id, *cap));
            HSDK_TRY(auto bytes, ovf::scaled_bytes(*cap, e->attr("capacityAllocationUnits").value_or("byte"),
                                                   fmt::format("{}: capacity of disk '{}'", what, disk.disk_id)));
            if (bytes == 0 || bytes > max_disk_bytes)
                return fail_corrupt(fmt::format("{}: disk '{}' capacity of {} bytes is out of range", what, disk.disk_id, bytes));
            disk.capacity_bytes = bytes;
            if (auto p = e->attr("populatedSize")) {
                HSDK_TRY(auto v, ovf::parse_unsigned(*p, "populatedSize"));
                disk.populated_bytes = v;
            }
            if (!disk.file_ref.empty() &&
                std::none_of(d.files.begin(), d.files.end(), [&](const OvfFileRef &f) { return f.id == disk.file_ref; }))
                return fail_corrupt(fmt::format("{}: disk '{}' refers to file '{}', which References does not list", what,
                                                disk.disk_id, disk.file_ref));
            d.disks.push_back(std::move(disk));
        }
    }
    if (const auto *net = root.child("NetworkSection"))
        for (const auto *n : net->children_named("Network")) d.networks.emplace_back(n->attr("name").value_or(""));

    // Virtual systems (possibly inside a VirtualSystemCollection).
    std::vector<const xml::Element *> systems;
    std::vector<const xml::Element *> pending{&root};
    while (!pending.empty()) {
        const auto *e = pending.back();
        pending.pop_back();
        for (auto it = e->children.rbegin(); it != e->children.rend(); ++it) {
            if (it->local == "VirtualSystem") systems.push_back(&*it);
            else if (it->local == "VirtualSystemCollection") pending.push_back(&*it);
        }
    }
    std::reverse(systems.begin(), systems.end());
    if (systems.empty()) return fail_corrupt(fmt::format("{}: no VirtualSystem in the envelope", what));
    for (const auto *s : systems) d.virtual_systems.emplace_back(s->attr("id").value_or(""));
    const xml::Element *vs = nullptr;
    if (options.virtual_system.empty()) {
        if (systems.size() > 1 && !options.first_if_several)
            return fail(Errc::invalid_argument,
                        fmt::format("{}: the envelope holds {} virtual systems; choose one by id or name", what, systems.size()));
        vs = systems.front();
    } else {
        for (const auto *s : systems)
            if (s->attr("id").value_or("") == options.virtual_system || s->child_text("Name") == options.virtual_system) vs = s;
        if (vs == nullptr) return fail(Errc::not_found, fmt::format("{}: no virtual system '{}'", what, options.virtual_system));
    }

    VirtualMachine &vm = d.vm;
    vm.provider = "ovf";
    vm.id = std::string(vs->attr("id").value_or(""));
    vm.name = vs->child_text("Name");
    if (vm.name.empty()) vm.name = vm.id;
    if (const auto *os = vs->child("OperatingSystemSection")) {
        if (auto id = os->attr("id")) {
            auto v = ovf::parse_unsigned(*id, "OperatingSystemSection id");
            if (v && v.value() < 1000000) vm.ovf_os_id = static_cast<int>(v.value());
        }
        vm.guest_id = std::string(os->attr("osType").value_or(""));
        vm.guest_os_description = os->child_text("Description");
        if (vm.guest_id.empty())
            if (const auto *t = os->child("OSType", ns_vbox)) vm.guest_id = xml::trim(t->text);
    }
    const xml::Element *hw = vs->child("VirtualHardwareSection");
    if (hw == nullptr) return fail_corrupt(fmt::format("{}: virtual system '{}' has no VirtualHardwareSection", what, vm.id));
    if (const auto *sys = hw->child("System")) vm.hardware_version = sys->child_text("VirtualSystemType");
    if (const auto *sys = hw->child("System")) {
        const auto uuid = sys->child_text("VirtualSystemIdentifier");
        (void)uuid;  // vCenter puts the VM name here, not a UUID
    }

    std::vector<HwItem> items;
    for (const auto &c : hw->children)
        if (c.local == "Item" || c.local == "EthernetPortItem" || c.local == "StorageItem") items.push_back(read_item(c));

    std::map<std::string, Controller> controllers;  // by InstanceID
    std::map<std::string, int> controller_count;
    bool have_cpu = false, have_memory = false;
    for (const auto &item : items) {
        const auto rt_text = item.get("ResourceType");
        if (rt_text.empty()) continue;
        auto rt_r = ovf::parse_unsigned(rt_text, fmt::format("{}: ResourceType of item '{}'", what, item.name()));
        if (!rt_r) return fail(rt_r.error());
        const int rt = static_cast<int>(std::min<std::uint64_t>(rt_r.value(), 1000));
        if (rt == 3) {
            HSDK_TRY(auto n, ovf::parse_unsigned(item.get("VirtualQuantity"), fmt::format("{}: CPU count", what)));
            if (n < 1 || n > static_cast<std::uint64_t>(max_cpus))
                return fail_corrupt(fmt::format("{}: CPU count {} is out of range", what, n));
            vm.cpus = static_cast<int>(n);
            if (const auto *cps = item.element->child("CoresPerSocket")) {
                HSDK_TRY(auto c, ovf::parse_unsigned(cps->text, fmt::format("{}: CoresPerSocket", what)));
                if (c >= 1 && c <= n && n % c == 0) vm.cores_per_socket = static_cast<int>(c);
                else d.warnings.push_back(fmt::format("ignored CoresPerSocket {} that does not divide {} CPUs", c, n));
            }
            have_cpu = true;
        } else if (rt == 4) {
            std::string units = item.get("AllocationUnits");
            if (units.empty()) units = "byte * 2^20";
            HSDK_TRY(auto bytes, ovf::scaled_bytes(item.get("VirtualQuantity"), units, fmt::format("{}: memory size", what)));
            const std::uint64_t mib = bytes >> 20;
            if (mib == 0 || mib > max_memory_mib) return fail_corrupt(fmt::format("{}: memory of {} bytes is out of range", what, bytes));
            vm.memory_mib = mib;
            have_memory = true;
        } else if (rt == 5 || rt == 6 || rt == 20) {
            HSDK_TRY(auto c, controller_of(item, rt));
            if (c.kind == "other") continue;
            c.order = controllers.size();
            if (item.get("Address").empty()) c.bus = controller_count[c.kind];
            controller_count[c.kind]++;
            const auto id = item.get("InstanceID");
            if (id.empty()) return fail_corrupt(fmt::format("{}: controller '{}' has no InstanceID", what, item.name()));
            controllers[id] = c;
        }
    }
    if (!have_cpu) d.warnings.push_back("no CPU item: assuming 1 CPU");
    if (!have_memory) return fail_corrupt(fmt::format("{}: virtual system '{}' declares no memory", what, vm.id));

    struct PlacedDisk {
        VmDisk disk;
        std::size_t controller_order;
    };
    std::vector<PlacedDisk> placed;
    for (const auto &item : items) {
        const auto rt_text = item.get("ResourceType");
        if (rt_text.empty()) continue;
        const auto rt = ovf::parse_unsigned(rt_text, "ResourceType").value();
        if (rt == 14 || rt == 15 || rt == 16) {
            d.warnings.push_back(fmt::format("skipped {} '{}'", rt == 14 ? "floppy drive" : "CD/DVD drive", item.name()));
            continue;
        }
        if (rt == 17) {
            std::string host = item.get("HostResource");
            std::string disk_id;
            for (std::string_view prefix : {"ovf:/disk/", "/disk/", "ovf://disk/"})
                if (host.rfind(prefix, 0) == 0) disk_id = host.substr(prefix.size());
            if (disk_id.empty())
                return fail_corrupt(fmt::format("{}: disk drive '{}' has no usable HostResource ('{}')", what, item.name(), host));
            auto ref = std::find_if(d.disks.begin(), d.disks.end(), [&](const OvfDiskRef &r) { return r.disk_id == disk_id; });
            if (ref == d.disks.end())
                return fail_corrupt(fmt::format("{}: disk drive '{}' refers to disk '{}', which DiskSection does not define", what,
                                                item.name(), disk_id));
            VmDisk disk;
            disk.id = disk_id;
            disk.label = item.name();
            disk.capacity_bytes = ref->capacity_bytes;
            if (!ref->file_ref.empty()) {
                auto f = std::find_if(d.files.begin(), d.files.end(), [&](const OvfFileRef &x) { return x.id == ref->file_ref; });
                disk.file = f->href;
                disk.file_bytes = f->size.value_or(0);
            }
            disk.file_format = disk_format_from_uri(ref->format_uri);
            std::size_t order = controllers.size();
            if (auto c = controllers.find(item.get("Parent")); c != controllers.end()) {
                disk.controller = c->second.kind;
                disk.controller_model = c->second.model;
                disk.controller_bus = c->second.bus;
                order = c->second.order;
            }
            if (auto unit = item.get("AddressOnParent"); !unit.empty()) {
                HSDK_TRY(auto u, ovf::parse_unsigned(unit, fmt::format("{}: AddressOnParent of '{}'", what, item.name())));
                if (u > 1024) return fail_corrupt(fmt::format("{}: AddressOnParent {} of '{}' is out of range", what, u, item.name()));
                disk.unit = static_cast<int>(u);
            }
            placed.push_back({std::move(disk), order});
        } else if (rt == 10) {
            VmNic nic;
            nic.id = item.get("InstanceID");
            nic.network = item.get("Connection");
            nic.adapter_type = nic_model(item.get("ResourceSubType"));
            if (auto mac = item.get("Address"); !mac.empty()) {
                auto m = ovf::normalize_mac(mac);
                if (m) nic.mac = *m;
                else d.warnings.push_back(fmt::format("ignored malformed MAC address '{}' of '{}'", mac, item.name()));
            }
            if (auto conn = item.get("AutomaticAllocation"); !conn.empty()) nic.connected = truthy(conn);
            vm.nics.push_back(std::move(nic));
        } else if (rt != 3 && rt != 4 && rt != 5 && rt != 6 && rt != 20) {
            d.warnings.push_back(fmt::format("skipped item '{}' (resource type {})", item.name(), rt));
        }
    }
    // Disk order: controller order, then bus position; the first disk boots.
    std::stable_sort(placed.begin(), placed.end(), [](const PlacedDisk &a, const PlacedDisk &b) {
        return std::tie(a.controller_order, a.disk.unit) < std::tie(b.controller_order, b.disk.unit);
    });
    for (auto &p : placed) vm.disks.push_back(std::move(p.disk));
    if (!vm.disks.empty()) vm.disks.front().boot_order = 1;

    read_vmware_config(*hw, vm);
    std::vector<std::string> vbox_macs;
    read_virtualbox_machine(*vs, vm, vbox_macs);
    for (std::size_t i = 0; i < vm.nics.size() && i < vbox_macs.size(); ++i)
        if (vm.nics[i].mac.empty()) vm.nics[i].mac = vbox_macs[i];
    return d;
}

Result<OvfDescriptor> read_ovf_file(const std::string &path, const OvfParseOptions &options) {
    HSDK_TRY(auto file, io::File::open_read(path));
    HSDK_TRY(auto size, file.size());
    if (size > (64u << 20)) return fail_corrupt(fmt::format("OVF descriptor '{}' is larger than 64 MiB", path));
    std::string text(static_cast<std::size_t>(size), '\0');
    HSDK_TRYV(file.read_exact(0, std::as_writable_bytes(std::span(text.data(), text.size()))));
    return parse_ovf(text, fmt::format("OVF descriptor '{}'", path), options);
}

}  // namespace hypersdk
