// vSphere as a provider of the registry: discovery through the Web Services API. Export keeps its
// own session (export.run, ExportSession) for now: it streams disks through NFC leases, which is
// not block reads.
#include "providers/builtin.hpp"

#include <hypersdk/vsphere.hpp>

#include <fmt/format.h>

namespace hypersdk::vsphere {
namespace {

bool matches(const VirtualMachine &vm, const VmFilter &filter) {
    return filter.name_contains.empty() || vm.name.find(filter.name_contains) != std::string::npos ||
           vm.inventory_path.find(filter.name_contains) != std::string::npos;
}

class VsphereSession final : public ProviderSession {
public:
    explicit VsphereSession(ConnectionOptions options) : options_(std::move(options)) {}

    Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) override {
        HSDK_TRY(auto all, vsphere::list_vms(options_));
        std::vector<VirtualMachine> out;
        for (auto &vm : all)
            if (matches(vm, filter)) out.push_back(std::move(vm));
        return out;
    }

    // An inventory path, or a name or managed object id that only one VM has.
    Result<VirtualMachine> describe(const std::string &vm) override {
        if (!vm.empty() && vm.front() == '/') return find_vm(options_, vm);
        HSDK_TRY(auto all, vsphere::list_vms(options_));
        const VirtualMachine *found = nullptr;
        for (const auto &v : all) {
            if (v.name != vm && v.id != vm) continue;
            if (found != nullptr)
                return fail(Errc::invalid_argument,
                            fmt::format("VM name '{}' is ambiguous ({} and {}); give the inventory path", vm,
                                        found->inventory_path, v.inventory_path));
            found = &v;
        }
        if (found == nullptr) return fail(Errc::not_found, fmt::format("no VM named '{}' on this vSphere server", vm));
        return *found;
    }

private:
    ConnectionOptions options_;
};

class VsphereProvider final : public Provider {
public:
    std::string name() const override { return "vsphere"; }
    std::string description() const override {
        return "VMware vCenter or ESXi through the Web Services API (GOVC_URL, GOVC_USERNAME, GOVC_PASSWORD, GOVC_INSECURE)";
    }
    std::uint32_t capabilities() const override {
        return static_cast<std::uint32_t>(ProviderCapability::list) | static_cast<std::uint32_t>(ProviderCapability::describe) |
               static_cast<std::uint32_t>(ProviderCapability::snapshot) |
               static_cast<std::uint32_t>(ProviderCapability::native_export);
    }
    // The definition operations share; providers.list spells it out.
    nlohmann::json config_schema() const override { return {{"$ref", "common.json#/definitions/vsphere_connection"}}; }
    Result<std::unique_ptr<ProviderSession>> connect(const nlohmann::json &config, const CancelToken &cancel) const override {
        HSDK_TRY(auto options, connection_from_json(config, cancel));
        return std::unique_ptr<ProviderSession>(new VsphereSession(std::move(options)));
    }
};

}  // namespace

std::shared_ptr<const Provider> vsphere_provider() { return std::make_shared<VsphereProvider>(); }

}  // namespace hypersdk::vsphere
