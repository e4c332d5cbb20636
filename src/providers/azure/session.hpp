// The Azure provider's session: ARM discovery of VMs, their managed disks and NICs; exports and
// backups from incremental snapshots of ours, read through a beginGetAccess SAS as sparse page
// blobs, access always ended and snapshots deleted afterwards (unless kept).
#pragma once

#include "cloud/azure/arm.hpp"

#include <hypersdk/provider.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hypersdk::azure {

inline constexpr const char *compute_api = "2023-09-01";
inline constexpr const char *disk_api = "2023-04-02";
inline constexpr const char *network_api = "2023-09-01";

struct Settings {
    bool keep_snapshots = false;
    unsigned access_seconds = 4 * 3600;  // how long a snapshot's SAS lasts
    HttpSourceOptions http;              // for the page blobs: TLS, timeouts, cancel
};

// A managed disk of a VM, as ARM describes it.
struct ManagedDisk {
    std::string id, name, sku;
    std::uint64_t size_bytes = 0;
    int lun = -1;  // -1: the OS disk
};

class AzureSession final : public ProviderSession {
public:
    AzureSession(cloud::azure::ArmCredentials credentials, cloud::azure::ArmSettings arm, Settings settings)
        : credentials_(credentials), arm_settings_(arm), arm_(std::make_unique<cloud::azure::Arm>(credentials, arm)), settings_(std::move(settings)) {}

    Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) override;
    Result<VirtualMachine> describe(const std::string &vm) override;
    Result<std::unique_ptr<PreparedExport>> prepare_export(const std::string &vm, const VirtualMachine &described,
                                                           const ExportPlan &plan) override;
    Result<TrackingStatus> tracking_status(const std::string &vm) override;
    Result<TrackingStatus> enable_tracking(const std::string &vm, bool enabled) override;
    Result<std::unique_ptr<PreparedBackup>> prepare_backup(const std::string &vm, const VirtualMachine &described,
                                                           const BackupPlan &plan) override;

    // An incremental snapshot of the disk, tagged as ours, in the VM's resource group; its id.
    Result<std::string> snapshot_disk(const VirtualMachine &vm, const VmDisk &disk, const std::string &purpose);
    // beginGetAccess: a read SAS URL of the snapshot.
    Result<std::string> grant(const std::string &snapshot_id);
    // endGetAccess and (unless kept) delete; a note for each thing that failed. Runs after a
    // cancel too.
    std::vector<std::string> release(const std::vector<std::string> &granted, const std::vector<std::string> &to_delete) noexcept;

    [[nodiscard]] const Settings &settings() const { return settings_; }

private:
    Result<nlohmann::json> find_vm(const std::string &vm);
    Result<VirtualMachine> to_vm(const nlohmann::json &vm);

    cloud::azure::ArmCredentials credentials_;
    cloud::azure::ArmSettings arm_settings_;
    std::unique_ptr<cloud::azure::Arm> arm_;
    Settings settings_;
};

}  // namespace hypersdk::azure
