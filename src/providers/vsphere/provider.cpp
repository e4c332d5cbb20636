// vSphere as a provider of the registry: discovery through the Web Services API, snapshots, and
// exports through NFC leases or datastore downloads (providers/vsphere/export.cpp). One login
// serves every call of a session.
#include "providers/builtin.hpp"
#include "providers/vsphere/cbt.hpp"
#include "providers/vsphere/discovery.hpp"
#include "providers/vsphere/export.hpp"
#include "providers/vsphere/lease.hpp"
#include "providers/vsphere/power.hpp"

#include <hypersdk/vsphere.hpp>

#include <fmt/format.h>

#include <map>

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
        HSDK_TRY(auto *s, session());
        HSDK_TRY(auto all, discover_all(*s));
        std::vector<VirtualMachine> out;
        for (auto &vm : all)
            if (matches(vm, filter)) out.push_back(std::move(vm));
        return out;
    }

    // An inventory path, or a name or managed object id that only one VM has.
    Result<VirtualMachine> describe(const std::string &vm) override {
        HSDK_TRY(auto found, find(vm));
        return found.vm;
    }

    Result<std::unique_ptr<PreparedExport>> prepare_export(const std::string &vm, const VirtualMachine &,
                                                           const ExportPlan &plan) override {
        HSDK_TRY(auto found, find(vm));
        HSDK_TRY(auto *s, session());
        (void)s;
        return vsphere::prepare_export(session_, std::move(found), plan);
    }

    Result<std::vector<SnapshotInfo>> list_snapshots(const std::string &vm) override {
        HSDK_TRY(auto found, find(vm));
        return list_vm_snapshots(*session_, found.ref);
    }

    Result<TrackingStatus> tracking_status(const std::string &vm) override {
        HSDK_TRY(auto found, find(vm));
        return vsphere::tracking_status(*session_, found);
    }

    Result<TrackingStatus> enable_tracking(const std::string &vm, bool enabled) override {
        HSDK_TRY(auto found, find(vm));
        HSDK_TRYV(set_tracking(*session_, found, enabled));
        return vsphere::tracking_status(*session_, found);
    }

    Result<std::unique_ptr<PreparedBackup>> prepare_backup(const std::string &vm, const VirtualMachine &,
                                                           const BackupPlan &plan) override {
        HSDK_TRY(auto found, find(vm));
        return vsphere::prepare_backup(session_, std::move(found), plan);
    }

    Result<StopResult> stop_vm(const std::string &vm, const StopOptions &options) override {
        HSDK_TRY(auto found, find(vm));
        return vsphere::stop_vm(*session_, found.ref, options);
    }

    Result<std::string> create_snapshot(const std::string &vm, const std::string &name, bool quiesce) override {
        HSDK_TRY(auto found, find(vm));
        HSDK_TRY(auto snap, vsphere::create_snapshot(*session_, found.ref, name, quiesce));
        return snap.value;
    }

    Result<void> remove_snapshot(const std::string &vm, const std::string &snapshot_id) override {
        HSDK_TRY(auto snapshots, list_snapshots(vm));
        const bool known = std::any_of(snapshots.begin(), snapshots.end(), [&](const SnapshotInfo &s) { return s.id == snapshot_id; });
        if (!known) return fail(Errc::not_found, fmt::format("not found: VM '{}' has no snapshot '{}'", vm, snapshot_id));
        return vsphere::remove_snapshot(*session_, MoRef{"VirtualMachineSnapshot", snapshot_id});
    }

private:
    Result<Session *> session() {
        if (!session_) {
            HSDK_TRY(auto opened, Session::open(options_));
            session_ = std::move(opened);
        }
        return session_.get();
    }

    // Found once per session: describe() then prepare_export() cost one lookup.
    Result<FoundVm> find(const std::string &vm) {
        if (auto it = found_.find(vm); it != found_.end()) return it->second;
        HSDK_TRY(auto *s, session());
        std::string path = vm;
        if (vm.empty() || vm.front() != '/') {
            HSDK_TRY(auto all, discover_all(*s));
            const VirtualMachine *match = nullptr;
            for (const auto &v : all) {
                if (v.name != vm && v.id != vm) continue;
                if (match != nullptr)
                    return fail(Errc::invalid_argument,
                                fmt::format("VM name '{}' is ambiguous ({} and {}); give the inventory path", vm,
                                            match->inventory_path, v.inventory_path));
                match = &v;
            }
            if (match == nullptr) return fail(Errc::not_found, fmt::format("no VM named '{}' on this vSphere server", vm));
            path = match->inventory_path;
        }
        HSDK_TRY(auto found, discover_vm(*s, path));
        found_[vm] = found;
        return found;
    }

    ConnectionOptions options_;
    std::shared_ptr<Session> session_;
    std::map<std::string, FoundVm> found_;
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
               static_cast<std::uint32_t>(ProviderCapability::native_export) |
               static_cast<std::uint32_t>(ProviderCapability::changed_extents) | static_cast<std::uint32_t>(ProviderCapability::power);
    }
    // The definition operations share; providers.list spells it out.
    nlohmann::json config_schema() const override { return {{"$ref", "common.json#/definitions/vsphere_connection"}}; }
    Result<std::unique_ptr<ProviderSession>> connect(const nlohmann::json &config, const CancelToken &cancel) const override {
        HSDK_TRY(auto options, connection_from_json(config, cancel));
        return open_session(std::move(options));
    }
};

}  // namespace

std::shared_ptr<const Provider> vsphere_provider() { return std::make_shared<VsphereProvider>(); }

std::unique_ptr<ProviderSession> open_session(ConnectionOptions options) {
    return std::unique_ptr<ProviderSession>(new VsphereSession(std::move(options)));
}

}  // namespace hypersdk::vsphere
