// libvirt domain XML from the VM model.
#include <hypersdk/kvm.hpp>

#include <hypersdk/log.hpp>

#include "xml/xml_tree.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace hypersdk {
namespace {

std::string x(std::string_view s) { return xml::escape(s); }

bool is_uuid(const std::string &s) {
    static const std::regex re("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
    return std::regex_match(s, re);
}

std::string domain_name(const VirtualMachine &vm, const KvmOptions &o) {
    std::string n = o.name.empty() ? vm.name : o.name;
    // libvirt forbids '/' in names; control characters make unusable files.
    for (char &c : n)
        if (c == '/' || static_cast<unsigned char>(c) < 0x20) c = '_';
    return n;
}

// Device name for the index-th disk on a bus: vda.., sda.., hda..
std::string target_dev(const std::string &bus, std::size_t index) {
    const std::string prefix = bus == "virtio" ? "vd" : (bus == "ide" ? "hd" : "sd");
    std::string suffix;
    std::size_t n = index;
    do {
        suffix.insert(suffix.begin(), static_cast<char>('a' + n % 26));
        n = n / 26;
    } while (n-- > 0);
    return prefix + suffix;
}

std::string mapped(const std::vector<std::pair<std::string, std::string>> &map, const std::string &key) {
    for (const auto &[k, v] : map)
        if (k == key) return v;
    return {};
}

}  // namespace

Result<std::string> libvirt_disk_type(const std::string &disk_format) {
    static const std::pair<std::string_view, std::string_view> types[] = {
        {"raw", "raw"}, {"qcow2", "qcow2"}, {"vmdk", "vmdk"}, {"vhd", "vpc"}, {"vpc", "vpc"}, {"vhdx", "vhdx"}, {"vdi", "vdi"}};
    for (const auto &[format, type] : types)
        if (disk_format == format) return std::string(type);
    return fail(Errc::invalid_argument,
                fmt::format("unknown disk format '{}' (expected raw, qcow2, vmdk, vhd (vpc), vhdx or vdi)", disk_format));
}

Result<void> check_kvm_options(const VirtualMachine &vm, const KvmOptions &o) {
    HSDK_TRYV(libvirt_disk_type(o.disk_format));
    std::vector<std::string> networks;
    for (const auto &nic : vm.nics)
        if (std::find(networks.begin(), networks.end(), nic.network) == networks.end()) networks.push_back(nic.network);
    for (const auto *map : {&o.network_map, &o.bridge_map}) {
        for (const auto &[source, target] : *map) {
            if (std::find(networks.begin(), networks.end(), source) != networks.end()) continue;
            std::string known;
            for (const auto &n : networks) known += (known.empty() ? "'" : ", '") + n + "'";
            const std::string message =
                fmt::format("{} entry '{}={}' matches no NIC of VM '{}' (its NICs are on {})", map == &o.network_map ? "network map" : "bridge map",
                            source, target, vm.name, known.empty() ? "no network" : known);
            if (o.strict) return fail(Errc::invalid_argument, message);
            log(LogLevel::warn, message);
        }
    }
    return success();
}

Result<std::string> libvirt_domain_xml(const VirtualMachine &vm, const KvmOptions &o) {
    HSDK_TRYV(check_kvm_options(vm, o));
    HSDK_TRY(const std::string disk_type, libvirt_disk_type(o.disk_format));
    const std::string name = domain_name(vm, o);
    if (name.empty()) return fail(Errc::invalid_argument, "the domain needs a name (the VM has none; give one)");
    if (vm.memory_mib == 0) return fail(Errc::invalid_argument, fmt::format("VM '{}' has no memory size", vm.name));
    if (vm.cpus < 1 || vm.cores_per_socket < 1 || vm.cpus % vm.cores_per_socket != 0)
        return fail(Errc::invalid_argument, fmt::format("VM '{}': {} CPUs cannot be split into sockets of {} cores", vm.name, vm.cpus,
                                                        vm.cores_per_socket));
    if (!o.machine.empty() && o.machine != "q35" && o.machine != "pc")
        return fail(Errc::invalid_argument, fmt::format("machine type '{}' is not q35 or pc", o.machine));
    if (!o.network.empty() && !o.bridge.empty()) return fail(Errc::invalid_argument, "give a network or a bridge, not both");
    const GuestProfile p = guest_profile(vm, o);
    if (vm.secure_boot && vm.firmware == Firmware::efi && p.machine != "q35")
        return fail(Errc::invalid_argument, "Secure Boot needs the q35 machine type");
    if (p.disk_bus == "ide" && vm.disks.size() > 4)
        return fail(Errc::unsupported, fmt::format("unsupported: {} IDE disks; the pc machine's IDE bus holds 4", vm.disks.size()));

    std::string d;
    d += "<domain type='kvm'>\n";
    d += fmt::format("  <name>{}</name>\n", x(name));
    if (is_uuid(vm.uuid)) d += fmt::format("  <uuid>{}</uuid>\n", x(vm.uuid));
    d += fmt::format("  <description>{}</description>\n",
                     x(fmt::format("Imported by hypersdk from {} VM '{}'{}", vm.provider.empty() ? "a" : vm.provider, vm.name,
                                   vm.guest_id.empty() ? "" : " (" + vm.guest_id + ")")));
    d += fmt::format("  <memory unit='MiB'>{}</memory>\n  <currentMemory unit='MiB'>{}</currentMemory>\n", vm.memory_mib, vm.memory_mib);
    d += fmt::format("  <vcpu placement='static'>{}</vcpu>\n", vm.cpus);
    const bool efi = vm.firmware == Firmware::efi;
    const bool secure = efi && vm.secure_boot;
    d += "  <os>\n";
    d += fmt::format("    <type arch='x86_64' machine='{}'>hvm</type>\n", p.machine);
    if (efi) {
        d += fmt::format("    <loader readonly='yes'{} type='pflash'>{}</loader>\n", secure ? " secure='yes'" : "",
                         x(secure ? o.ovmf_code_secure : o.ovmf_code));
        d += fmt::format("    <nvram template='{}'>{}/{}_VARS.fd</nvram>\n", x(secure ? o.ovmf_vars_secure : o.ovmf_vars), x(o.nvram_dir), x(name));
    }
    d += "  </os>\n";
    d += "  <features>\n    <acpi/>\n    <apic/>\n";
    if (secure) d += "    <smm state='on'/>\n";  // required by the secure OVMF build
    if (p.family == "windows")
        d += "    <hyperv mode='custom'>\n      <relaxed state='on'/>\n      <vapic state='on'/>\n"
             "      <spinlocks state='on' retries='8191'/>\n    </hyperv>\n";
    d += "  </features>\n";
    d += fmt::format("  <cpu mode='host-model'>\n    <topology sockets='{}' cores='{}' threads='1'/>\n  </cpu>\n",
                     vm.cpus / vm.cores_per_socket, vm.cores_per_socket);
    if (p.family == "windows")
        d += "  <clock offset='localtime'>\n    <timer name='rtc' tickpolicy='catchup'/>\n    <timer name='pit' tickpolicy='delay'/>\n"
             "    <timer name='hpet' present='no'/>\n    <timer name='hypervclock' present='yes'/>\n  </clock>\n";
    else
        d += "  <clock offset='utc'>\n    <timer name='rtc' tickpolicy='catchup'/>\n    <timer name='pit' tickpolicy='delay'/>\n"
             "    <timer name='hpet' present='no'/>\n  </clock>\n";
    d += "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n";
    d += "  <devices>\n";
    for (std::size_t i = 0; i < vm.disks.size(); ++i) {
        const auto &disk = vm.disks[i];
        const std::string path = disk_path(o.disk_dir, converted_disk_name(disk, i, o.disk_format));
        d += "    <disk type='file' device='disk'>\n";
        d += fmt::format("      <driver name='qemu' type='{}'{}/>\n", x(disk_type),
                         p.virtio ? " discard='unmap'" : "");
        d += fmt::format("      <source file='{}'/>\n", x(path));
        d += fmt::format("      <target dev='{}' bus='{}'/>\n", target_dev(p.disk_bus, i), p.disk_bus);
        if (disk.boot_order) d += fmt::format("      <boot order='{}'/>\n", *disk.boot_order);
        d += "    </disk>\n";
    }
    if (p.machine == "q35") {
        d += "    <controller type='pci' index='0' model='pcie-root'/>\n";
        // Free root ports so devices (and later hot-plugs) get their own PCIe slot.
        for (int i = 1; i <= 8; ++i) d += fmt::format("    <controller type='pci' index='{}' model='pcie-root-port'/>\n", i);
        if (p.disk_bus == "sata") d += "    <controller type='sata' index='0'/>\n";
        d += "    <controller type='usb' index='0' model='qemu-xhci'/>\n";
    } else {
        d += "    <controller type='pci' index='0' model='pci-root'/>\n";
        if (p.disk_bus == "ide") d += "    <controller type='ide' index='0'/>\n";
        if (p.disk_bus == "sata") d += "    <controller type='sata' index='0'/>\n";
        d += "    <controller type='usb' index='0' model='piix3-uhci'/>\n";
    }
    d += "    <controller type='virtio-serial' index='0'/>\n";
    for (const auto &nic : vm.nics) {
        std::string bridge = mapped(o.bridge_map, nic.network);
        std::string network = mapped(o.network_map, nic.network);
        if (bridge.empty() && network.empty()) {
            if (!o.bridge.empty()) bridge = o.bridge;
            else network = o.network.empty() ? "default" : o.network;
        }
        if (!bridge.empty()) {
            d += "    <interface type='bridge'>\n";
            d += fmt::format("      <source bridge='{}'/>\n", x(bridge));
        } else {
            d += "    <interface type='network'>\n";
            d += fmt::format("      <source network='{}'/>\n", x(network));
        }
        if (!nic.mac.empty()) d += fmt::format("      <mac address='{}'/>\n", x(nic.mac));
        d += fmt::format("      <model type='{}'/>\n", p.nic_model);
        if (!nic.connected) d += "      <link state='down'/>\n";
        d += "    </interface>\n";
    }
    d += "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n";
    d += "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n";
    d += "    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n";
    d += fmt::format("    <input type='tablet' bus='usb'/>\n");
    d += "    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>\n";
    d += fmt::format("    <video>\n      <model type='{}'/>\n    </video>\n", p.video);
    // Windows 11 refuses to boot without a TPM 2.0; the vTPM is emulated by swtpm on the host.
    if (vm.guest_id.find("windows11") != std::string::npos)
        d += "    <tpm model='tpm-crb'>\n      <backend type='emulator' version='2.0'/>\n    </tpm>\n";
    if (p.virtio) d += "    <memballoon model='virtio'/>\n    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n";
    else d += "    <memballoon model='none'/>\n";
    d += "  </devices>\n";
    d += "</domain>\n";
    return d;
}

}  // namespace hypersdk
