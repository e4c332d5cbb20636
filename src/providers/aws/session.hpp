// The AWS provider's session: EC2 discovery and snapshots, exports and backups through the EBS
// direct APIs (or an EC2 export task to S3), all on one signed client.
#pragma once

#include "cloud/aws/client.hpp"
#include "cloud/aws/ebs.hpp"
#include "cloud/aws/ec2.hpp"

#include <hypersdk/provider.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hypersdk::aws {

struct Settings {
    cloud::aws::EbsSourceOptions blocks;
    bool keep_snapshots = false;
    std::chrono::seconds snapshot_timeout{3600};
    std::chrono::milliseconds poll_interval{2000};
    std::string export_bucket, export_prefix, export_format = "vmdk", target_environment = "vmware";
    HttpSourceOptions http;  // for S3 objects: timeout, TLS, cancel
};

// The tags every snapshot of ours carries, so that it can be told from the user's own.
inline constexpr const char *created_by_tag = "hsdk:created-by";
inline constexpr const char *instance_tag = "hsdk:instance";
inline constexpr const char *purpose_tag = "hsdk:purpose";

class AwsSession final : public ProviderSession {
public:
    AwsSession(std::shared_ptr<cloud::aws::Client> client, Settings settings)
        : client_(std::move(client)), settings_(std::move(settings)) {}

    Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) override;
    Result<VirtualMachine> describe(const std::string &vm) override;
    Result<std::shared_ptr<ByteSource>> open_disk(const std::string &vm, std::size_t index) override;
    Result<std::unique_ptr<PreparedExport>> prepare_export(const std::string &vm, const VirtualMachine &described,
                                                           const ExportPlan &plan) override;
    Result<std::vector<SnapshotInfo>> list_snapshots(const std::string &vm) override;
    Result<std::string> create_snapshot(const std::string &vm, const std::string &name, bool quiesce) override;
    Result<void> remove_snapshot(const std::string &vm, const std::string &snapshot_id) override;
    Result<TrackingStatus> tracking_status(const std::string &vm) override;
    Result<TrackingStatus> enable_tracking(const std::string &vm, bool enabled) override;
    Result<std::unique_ptr<PreparedBackup>> prepare_backup(const std::string &vm, const VirtualMachine &described,
                                                           const BackupPlan &plan) override;

    // Snapshots of every volume of the instance, tagged as ours, waited for until completed
    // (deleted again when that fails). In the order of the described disks.
    Result<std::vector<cloud::aws::Ec2Snapshot>> snapshot_instance(const VirtualMachine &vm, const std::string &purpose,
                                                                   const std::string &name, const CancelToken &cancel,
                                                                   const std::function<void(const std::string &)> &phase);
    // Deletes snapshots; a note for each one that could not be deleted.
    std::vector<std::string> delete_snapshots(const std::vector<std::string> &ids) noexcept;

    [[nodiscard]] cloud::aws::Client &client() { return *client_; }
    [[nodiscard]] const std::shared_ptr<cloud::aws::Client> &shared_client() const { return client_; }
    [[nodiscard]] const Settings &settings() const { return settings_; }

private:
    Result<cloud::aws::Ec2Instance> find_instance(const std::string &vm);
    Result<VirtualMachine> to_vm(const cloud::aws::Ec2Instance &instance);
    Result<std::unique_ptr<PreparedExport>> prepare_export_task(const VirtualMachine &described, const ExportPlan &plan);

    std::shared_ptr<cloud::aws::Client> client_;
    Settings settings_;
};

}  // namespace hypersdk::aws
