// VM discovery: vSphere properties -> hypersdk::VirtualMachine.
#pragma once

#include <optional>

#include "providers/vsphere/properties.hpp"

#include <hypersdk/vm.hpp>

#include <map>
#include <string>
#include <vector>

namespace hypersdk::vsphere {

// The VM properties discovery reads.
const std::vector<std::string> &vm_property_paths();

// Network names by managed object id and by distributed port group key.
using NetworkNames = std::map<std::string, std::string>;

// Builds the model from one VM's properties (see vm_property_paths()).
VirtualMachine vm_from_properties(const ObjectContent &vm, const std::string &inventory_path, const NetworkNames &networks);

// "[datastore1] folder/disk.vmdk" -> {"datastore1", "folder/disk.vmdk"}.
std::pair<std::string, std::string> split_datastore_path(const std::string &backing);

struct FoundVm {
    MoRef ref;
    VirtualMachine vm;
    MoRef datacenter;
    std::string datacenter_path;  // "DC0" or "folder/DC0": the dcPath of datastore URLs
    std::optional<xml::Element> layout;  // the VM's layoutEx (files and disk chains), when the server has one
};

Result<std::vector<VirtualMachine>> discover_all(Session &s);
// By inventory path (SearchIndex.FindByInventoryPath); not_found when nothing is there.
Result<FoundVm> discover_vm(Session &s, const std::string &inventory_path);

}  // namespace hypersdk::vsphere
