// Exports through an HttpNfcLease (ExportVm / ExportSnapshot) and the snapshots they need.
#pragma once

#include "providers/vsphere/properties.hpp"

#include <hypersdk/provider.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace hypersdk::vsphere {

struct LeaseDevice {
    std::string key;             // device key, e.g. "/vm-42/VirtualLsiLogicController0:0"
    std::string url;             // '*' host already replaced by the server's
    std::string target_id;       // file name the server suggests
    std::string ssl_thumbprint;  // of the host serving the URL, when it differs from the server's
    bool disk = false;
    std::uint64_t file_size = 0;  // 0 when the server does not say
};

struct LeaseInfo {
    std::vector<LeaseDevice> devices;
    std::uint64_t total_disk_capacity_kb = 0;
    int timeout_seconds = 0;
};

struct LeaseManifestEntry {
    std::string key;   // matches LeaseDevice::key
    std::string sha1;  // lower-case hex of the bytes the server sent
    std::uint64_t size = 0;
};

// ExportVm (VM powered off) or ExportSnapshot.
Result<MoRef> export_vm(Session &s, const MoRef &vm);
Result<MoRef> export_snapshot(Session &s, const MoRef &snapshot);
// Waits while the lease initialises; its error becomes ours.
Result<LeaseInfo> wait_lease_ready(Session &s, const MoRef &lease);
Result<void> lease_progress(Session &s, const MoRef &lease, int percent);
// How often HttpNfcLeaseProgress must be sent so a lease of this timeout never expires during a
// long download: every 60 s, sooner for short timeouts.
std::chrono::seconds lease_keepalive_interval(int lease_timeout_seconds);
Result<void> lease_complete(Session &s, const MoRef &lease);
Result<void> lease_abort(Session &s, const MoRef &lease, const std::string &reason);
// HttpNfcLeaseGetManifest; an empty list when the server keeps none.
Result<std::vector<LeaseManifestEntry>> lease_manifest(Session &s, const MoRef &lease);

// CreateSnapshot_Task (memory off) -> the snapshot; RemoveSnapshot_Task (consolidating).
Result<MoRef> create_snapshot(Session &s, const MoRef &vm, const std::string &name, bool quiesce);
Result<void> remove_snapshot(Session &s, const MoRef &snapshot);
// Every snapshot of the VM, parents before children.
Result<std::vector<SnapshotInfo>> list_vm_snapshots(Session &s, const MoRef &vm);

// Replaces a '*' host (ESXi's way of saying "the host you connected to") with `host`.
std::string resolve_device_url(const std::string &url, const std::string &host);

}  // namespace hypersdk::vsphere
