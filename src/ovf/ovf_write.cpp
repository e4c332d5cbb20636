// VirtualMachine -> OVF 1.0 envelope in the shape vCenter/ovftool write (every importer reads it).
#include <hypersdk/ovf.hpp>

#include "xml/xml_tree.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace hypersdk {
namespace {

std::string x(std::string_view s) { return xml::escape(s); }

// CIM_OperatingSystem OsType for the OperatingSystemSection; importers rely on vmw:osType.
int cim_os_id(const VirtualMachine &vm) {
    if (vm.ovf_os_id >= 0) return vm.ovf_os_id;
    const std::string g = vm.guest_id;
    const bool is64 = g.find("64") != std::string::npos;
    if (g.find("windows") != std::string::npos || g.rfind("win", 0) == 0) return is64 ? 103 : 1;
    if (g.find("Linux") != std::string::npos || g.find("rhel") != std::string::npos || g.find("centos") != std::string::npos ||
        g.find("ubuntu") != std::string::npos || g.find("debian") != std::string::npos || g.find("sles") != std::string::npos ||
        g.find("linux") != std::string::npos)
        return is64 ? 101 : 36;
    return 1;
}

std::string scsi_subtype(std::string_view model) {
    if (model == "pvscsi") return "VirtualSCSI";
    if (model == "buslogic") return "buslogic";
    if (model == "lsilogicsas") return "lsilogicsas";
    return "lsilogic";
}

std::string nic_subtype(std::string_view model) {
    if (model == "vmxnet3") return "VmxNet3";
    if (model == "e1000e") return "E1000e";
    if (model == "e1000") return "E1000";
    if (model == "pcnet32") return "PCNet32";
    if (model == "vmxnet2") return "VmxNet2";
    return model.empty() ? "VmxNet3" : std::string(model);
}

}  // namespace

std::string write_ovf(const VirtualMachine &vm, const std::vector<OvfWriteFile> &disk_files) {
    std::string o;
    o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    o += "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:cim=\"http://schemas.dmtf.org/wbem/wscim/1/common\" "
         "xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" "
         "xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" "
         "xmlns:vmw=\"http://www.vmware.com/schema/ovf\" "
         "xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\" "
         "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n";
    o += "  <References>\n";
    for (std::size_t i = 0; i < disk_files.size(); ++i) {
        // ovf:compression as ovftool --compress writes it: the href names the stored (compressed)
        // file and ovf:size counts its stored bytes (DSP0243, "Compression").
        const std::string compression =
            disk_files[i].compression.empty() ? std::string() : fmt::format(" ovf:compression=\"{}\"", x(disk_files[i].compression));
        o += fmt::format("    <File{} ovf:href=\"{}\" ovf:id=\"file{}\" ovf:size=\"{}\"/>\n", compression, x(disk_files[i].href), i + 1,
                         disk_files[i].size);
    }
    o += "  </References>\n";
    o += "  <DiskSection>\n    <Info>Virtual disk information</Info>\n";
    for (std::size_t i = 0; i < vm.disks.size(); ++i) {
        o += fmt::format("    <Disk ovf:capacity=\"{}\" ovf:capacityAllocationUnits=\"byte\" ovf:diskId=\"vmdisk{}\"", vm.disks[i].capacity_bytes, i + 1);
        if (i < disk_files.size()) o += fmt::format(" ovf:fileRef=\"file{}\"", i + 1);
        o += " ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n";
    }
    o += "  </DiskSection>\n";
    std::vector<std::string> networks;
    for (const auto &n : vm.nics)
        if (!n.network.empty() && std::find(networks.begin(), networks.end(), n.network) == networks.end()) networks.push_back(n.network);
    o += "  <NetworkSection>\n    <Info>The list of logical networks</Info>\n";
    for (const auto &n : networks)
        o += fmt::format("    <Network ovf:name=\"{}\">\n      <Description>The {} network</Description>\n    </Network>\n", x(n), x(n));
    o += "  </NetworkSection>\n";
    const std::string vs_id = vm.name.empty() ? "vm" : vm.name;
    o += fmt::format("  <VirtualSystem ovf:id=\"{}\">\n    <Info>A virtual machine</Info>\n    <Name>{}</Name>\n", x(vs_id), x(vs_id));
    o += fmt::format("    <OperatingSystemSection ovf:id=\"{}\"", cim_os_id(vm));
    if (!vm.guest_id.empty()) o += fmt::format(" vmw:osType=\"{}\"", x(vm.guest_id));
    o += ">\n      <Info>The kind of installed guest operating system</Info>\n";
    if (!vm.guest_os_description.empty()) o += fmt::format("      <Description>{}</Description>\n", x(vm.guest_os_description));
    o += "    </OperatingSystemSection>\n";
    o += "    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n      <System>\n";
    o += "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n        <vssd:InstanceID>0</vssd:InstanceID>\n";
    o += fmt::format("        <vssd:VirtualSystemIdentifier>{}</vssd:VirtualSystemIdentifier>\n", x(vs_id));
    o += fmt::format("        <vssd:VirtualSystemType>{}</vssd:VirtualSystemType>\n      </System>\n",
                     x(vm.hardware_version.rfind("vmx-", 0) == 0 ? vm.hardware_version : "vmx-13"));
    int instance = 1;
    auto item = [&](std::string body) { o += "      <Item>\n" + body + "      </Item>\n"; };
    item(fmt::format("        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
                     "        <rasd:Description>Number of Virtual CPUs</rasd:Description>\n"
                     "        <rasd:ElementName>{} virtual CPU(s)</rasd:ElementName>\n"
                     "        <rasd:InstanceID>{}</rasd:InstanceID>\n        <rasd:ResourceType>3</rasd:ResourceType>\n"
                     "        <rasd:VirtualQuantity>{}</rasd:VirtualQuantity>\n"
                     "        <vmw:CoresPerSocket ovf:required=\"false\">{}</vmw:CoresPerSocket>\n",
                     vm.cpus, instance++, vm.cpus, vm.cores_per_socket));
    item(fmt::format("        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"
                     "        <rasd:Description>Memory Size</rasd:Description>\n"
                     "        <rasd:ElementName>{}MB of memory</rasd:ElementName>\n"
                     "        <rasd:InstanceID>{}</rasd:InstanceID>\n        <rasd:ResourceType>4</rasd:ResourceType>\n"
                     "        <rasd:VirtualQuantity>{}</rasd:VirtualQuantity>\n",
                     vm.memory_mib, instance++, vm.memory_mib));
    // One controller item per (kind, bus) in disk order.
    std::map<std::pair<std::string, int>, int> controller_ids;
    for (const auto &d : vm.disks) {
        const std::string kind = d.controller.empty() ? "scsi" : d.controller;
        const auto key = std::make_pair(kind, d.controller_bus);
        if (controller_ids.count(key)) continue;
        const int id = instance++;
        controller_ids[key] = id;
        std::string type, subtype, name;
        if (kind == "ide") { type = "5"; name = "IDE Controller"; }
        else if (kind == "sata") { type = "20"; subtype = "vmware.sata.ahci"; name = "SATA Controller"; }
        else if (kind == "nvme") { type = "20"; subtype = "vmware.nvme.controller"; name = "NVMe Controller"; }
        else { type = "6"; subtype = scsi_subtype(d.controller_model); name = "SCSI Controller"; }
        std::string body = fmt::format("        <rasd:Address>{}</rasd:Address>\n        <rasd:Description>{} {}</rasd:Description>\n"
                                       "        <rasd:ElementName>{} {}</rasd:ElementName>\n        <rasd:InstanceID>{}</rasd:InstanceID>\n",
                                       d.controller_bus, name, d.controller_bus, name, d.controller_bus, id);
        if (!subtype.empty()) body += fmt::format("        <rasd:ResourceSubType>{}</rasd:ResourceSubType>\n", subtype);
        body += fmt::format("        <rasd:ResourceType>{}</rasd:ResourceType>\n", type);
        item(body);
    }
    for (std::size_t i = 0; i < vm.disks.size(); ++i) {
        const auto &d = vm.disks[i];
        const int parent = controller_ids[{d.controller.empty() ? "scsi" : d.controller, d.controller_bus}];
        item(fmt::format("        <rasd:AddressOnParent>{}</rasd:AddressOnParent>\n        <rasd:ElementName>{}</rasd:ElementName>\n"
                         "        <rasd:HostResource>ovf:/disk/vmdisk{}</rasd:HostResource>\n        <rasd:InstanceID>{}</rasd:InstanceID>\n"
                         "        <rasd:Parent>{}</rasd:Parent>\n        <rasd:ResourceType>17</rasd:ResourceType>\n",
                         d.unit, x(d.label.empty() ? fmt::format("Hard disk {}", i + 1) : d.label), i + 1, instance++, parent));
    }
    for (std::size_t i = 0; i < vm.nics.size(); ++i) {
        const auto &n = vm.nics[i];
        std::string body;
        if (!n.mac.empty()) body += fmt::format("        <rasd:Address>{}</rasd:Address>\n", x(n.mac));
        body += fmt::format("        <rasd:AddressOnParent>{}</rasd:AddressOnParent>\n", 7 + i);
        body += fmt::format("        <rasd:AutomaticAllocation>{}</rasd:AutomaticAllocation>\n", n.connected ? "true" : "false");
        if (!n.network.empty()) body += fmt::format("        <rasd:Connection>{}</rasd:Connection>\n", x(n.network));
        body += fmt::format("        <rasd:ElementName>Network adapter {}</rasd:ElementName>\n        <rasd:InstanceID>{}</rasd:InstanceID>\n"
                            "        <rasd:ResourceSubType>{}</rasd:ResourceSubType>\n        <rasd:ResourceType>10</rasd:ResourceType>\n",
                            i + 1, instance++, nic_subtype(n.adapter_type));
        item(body);
    }
    o += fmt::format("      <vmw:Config ovf:required=\"false\" vmw:key=\"firmware\" vmw:value=\"{}\"/>\n", firmware_name(vm.firmware));
    if (vm.firmware == Firmware::efi)
        o += fmt::format("      <vmw:Config ovf:required=\"false\" vmw:key=\"bootOptions.efiSecureBootEnabled\" vmw:value=\"{}\"/>\n",
                         vm.secure_boot ? "true" : "false");
    o += "    </VirtualHardwareSection>\n  </VirtualSystem>\n</Envelope>\n";
    return o;
}

}  // namespace hypersdk
