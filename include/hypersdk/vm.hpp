// One model of a virtual machine, shared by discovery (vSphere, ...), OVF/OVA and the KVM writers.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk {

enum class Firmware { bios, efi };

struct VmDisk {
    std::string id;                  // stable within the VM: vSphere device key, OVF diskId, ...
    std::string label;               // "Hard disk 1"
    std::uint64_t capacity_bytes = 0;
    std::string controller;          // scsi, sata, ide, nvme (empty when unknown)
    std::string controller_model;    // lsilogic, lsilogicsas, pvscsi, buslogic, ahci, piix4, ...
    int controller_bus = 0;          // controller number within its kind
    int unit = 0;                    // unit number on the controller
    std::string backing_file;        // where the source keeps it, e.g. "[datastore1] vm/vm.vmdk"
    std::string datastore;
    std::string change_id;           // changed-block tracking id, when known
    bool thin = false;
    std::string file;                // local or package file (OVF href, exported path)
    std::string file_format;         // format of `file` (vmdk, qcow2, ...)
    std::uint64_t file_bytes = 0;    // size of `file`, when known
    std::string sha256;              // of `file`, when known
    std::optional<int> boot_order;   // 1 = first
};

struct VmNic {
    std::string id;
    std::string mac;                 // "00:50:56:aa:bb:cc", lower case
    std::string network;             // source network name
    std::string adapter_type;        // vmxnet3, e1000, e1000e, pcnet32, virtio, ...
    bool connected = true;
};

struct VirtualMachine {
    std::string provider;            // vsphere, ovf, ...
    std::string id;                  // provider's id: managed object id, OVF VirtualSystem id
    std::string name;
    std::string inventory_path;      // /DC0/vm/folder/name
    std::string uuid;                // BIOS UUID
    std::string instance_uuid;
    std::string power_state;         // poweredOn, poweredOff, suspended (empty when unknown)
    std::string host;                // the host it runs on (vSphere: the ESXi host's name in a VM list), empty when unknown
    std::string guest_id;            // vSphere guestId / OVF vmw:osType, e.g. rhel8_64Guest
    int ovf_os_id = -1;              // CIM OperatingSystemSection ovf:id (-1 when unknown)
    std::string guest_os_description;
    int cpus = 1;
    int cores_per_socket = 1;
    std::uint64_t memory_mib = 0;
    Firmware firmware = Firmware::bios;
    bool secure_boot = false;
    std::vector<VmDisk> disks;
    std::vector<VmNic> nics;
    std::string hardware_version;    // vmx-19, virtualbox-2.2, ...
};

nlohmann::json to_json(const VirtualMachine &vm);
// Validates types and ranges; unknown keys are ignored (forward compatible).
Result<VirtualMachine> vm_from_json(const nlohmann::json &j);

std::string_view firmware_name(Firmware f) noexcept;

}  // namespace hypersdk
