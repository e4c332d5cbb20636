// vSphere changed-block tracking: turning it on (ReconfigVM changeTrackingEnabled, then a
// snapshot created and removed to activate it), its status per disk, and backups: one snapshot
// per run, QueryChangedDiskAreas paged to each disk's capacity, the snapshot's disks read over
// the datastore HTTP interface as VMDK images.
#pragma once

#include "providers/vsphere/discovery.hpp"

#include <hypersdk/provider.hpp>

#include <memory>

namespace hypersdk::vsphere {

// Snapshots whose names start with this are ours: a crashed run's are removed by the next one.
inline constexpr std::string_view backup_snapshot_prefix = "hsdk-backup-";
// vSphere supports 32 snapshots per VM and slows down long before; refuse from this many on.
inline constexpr std::size_t max_existing_snapshots = 28;

Result<TrackingStatus> tracking_status(Session &s, const FoundVm &found);
Result<void> set_tracking(Session &s, const FoundVm &found, bool enabled);

Result<std::unique_ptr<PreparedBackup>> prepare_backup(std::shared_ptr<Session> session, FoundVm found, const BackupPlan &plan);

}  // namespace hypersdk::vsphere
