// What a ProviderSession does when the provider does not say otherwise: exports through block
// reads, and no snapshots.
#include <hypersdk/provider.hpp>

#include <fmt/format.h>

namespace hypersdk {
namespace {

// Every disk handed over as the ByteSource open_disk() gives; nothing to hold on the platform.
class BlockReadExport final : public PreparedExport {
public:
    BlockReadExport(VirtualMachine vm, std::vector<ExportDisk> disks) : vm_(std::move(vm)), disks_(std::move(disks)) {}
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<ExportDisk> &disks() override { return disks_; }
    std::string method() const override { return "block reads"; }
    Result<void> complete() override { return success(); }
    std::vector<std::string> abort(const std::string &) noexcept override { return {}; }

private:
    VirtualMachine vm_;
    std::vector<ExportDisk> disks_;
};

}  // namespace

Result<std::shared_ptr<ByteSource>> ProviderSession::open_disk(const std::string &, std::size_t) {
    return fail(Errc::unsupported, "this provider cannot read disks block by block");
}

Result<std::unique_ptr<PreparedExport>> ProviderSession::prepare_export(const std::string &vm, const VirtualMachine &described,
                                                                        const ExportPlan &plan) {
    std::vector<ExportDisk> disks;
    for (std::size_t i = 0; i < described.disks.size(); ++i) {
        HSDK_TRYV(plan.cancel.check());
        auto opened = open_disk(vm, i);
        if (!opened) {
            if (opened.error().code == Errc::unsupported)
                return fail(Errc::unsupported, fmt::format("unsupported: provider '{}' cannot export: it has neither its own export "
                                                           "nor block reads",
                                                           described.provider));
            return fail(opened.error());
        }
        ExportDisk d;
        d.blocks = std::move(opened).value();
        d.format = described.disks[i].file_format.empty() ? "raw" : described.disks[i].file_format;
        d.label = d.blocks->name();
        d.identity = d.blocks->identity();
        disks.push_back(std::move(d));
    }
    return std::unique_ptr<PreparedExport>(new BlockReadExport(described, std::move(disks)));
}

Result<std::vector<SnapshotInfo>> ProviderSession::list_snapshots(const std::string &) {
    return fail(Errc::unsupported, "unsupported: this provider has no snapshots");
}

Result<std::string> ProviderSession::create_snapshot(const std::string &, const std::string &, bool) {
    return fail(Errc::unsupported, "unsupported: this provider has no snapshots");
}

Result<void> ProviderSession::remove_snapshot(const std::string &, const std::string &) {
    return fail(Errc::unsupported, "unsupported: this provider has no snapshots");
}

Result<TrackingStatus> ProviderSession::tracking_status(const std::string &) {
    return fail(Errc::unsupported, "unsupported: this provider has no changed-block tracking");
}

Result<TrackingStatus> ProviderSession::enable_tracking(const std::string &, bool) {
    return fail(Errc::unsupported, "unsupported: this provider has no changed-block tracking");
}

Result<std::unique_ptr<PreparedBackup>> ProviderSession::prepare_backup(const std::string &, const VirtualMachine &, const BackupPlan &) {
    return fail(Errc::unsupported, "unsupported: this provider has no changed-block tracking (backups need it)");
}

Result<StopResult> ProviderSession::stop_vm(const std::string &, const StopOptions &) {
    return fail(Errc::unsupported, "unsupported: this provider cannot stop a VM (a warm migration's cutover needs it)");
}

}  // namespace hypersdk
