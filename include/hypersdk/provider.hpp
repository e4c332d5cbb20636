// Providers: the platforms VMs are moved off (vSphere, clouds, plugins loaded at run time), in one
// registry like the format drivers'. A provider connects a Session from a JSON config; a session
// lists and describes VMs, takes snapshots, and prepares exports: a PreparedExport hands each disk
// over as a DiskSource (readable at any offset, or an in-order stream such as vSphere's NFC
// stream-optimized VMDK) and holds what the platform needs kept alive meanwhile (a lease, a
// snapshot). The one generic export session (<hypersdk/export.hpp>) does everything else.
#pragma once

#include <hypersdk/byte_source.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/cbt.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/vm.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk {

// What a provider can do; names as providers.list reports them.
enum class ProviderCapability : std::uint32_t {
    list = 1u << 0,             // list VMs
    describe = 1u << 1,         // describe one VM (hardware, disks, NICs)
    snapshot = 1u << 2,         // snapshots for consistent exports of running VMs
    native_export = 1u << 3,    // the platform's own export (vSphere NFC lease, cloud export tasks)
    block_reads = 1u << 4,      // disks readable at any offset (open_disk)
    changed_extents = 1u << 5,  // changed-block queries for incremental backups
    power = 1u << 6,            // power operations
};
std::vector<std::string> capability_names(std::uint32_t capabilities);

struct VmFilter {
    std::string name_contains;  // case-sensitive substring of name or inventory path; empty: all
};

// In-order bytes that can begin again at an offset: the NFC stream-optimized VMDK, a datastore
// file, a cloud's export object.
class DiskStream {
public:
    virtual ~DiskStream() = default;
    struct Start {
        std::uint64_t offset = 0;            // where the bytes that follow begin: the offset asked
                                             // for, or 0 when the source cannot skip
        std::optional<std::uint64_t> total;  // the whole stream's length, when known
    };
    using StartHandler = std::function<Result<void>(const Start &)>;
    using Sink = std::function<Result<void>(std::span<const std::byte>)>;
    // Sends the bytes from `offset` on to `sink`, in order, until the stream ends; `on_start` runs
    // once before the first byte. An error from either stops the transfer and is returned.
    // Transport failures are network_error / timeout (or remote_error "HTTP 5xx"): the caller
    // tries again from the byte it reached.
    virtual Result<void> read_from(std::uint64_t offset, const StartHandler &on_start, const Sink &sink) = 0;
};

// One disk of a prepared export: exactly one of `blocks` and `stream` is set.
struct ExportDisk {
    std::shared_ptr<ByteSource> blocks;  // readable at any offset (block reads)
    // Reads of `blocks` kept in flight ahead of the conversion (ConvertOptions::requests_in_flight),
    // tuned by the provider to the platform's latency and documented request rates; 0: the
    // conversion's workers read it themselves (a local file, or a source that pipelines its own
    // reads, like the EBS block fetcher).
    unsigned requests_in_flight = 0;
    std::shared_ptr<DiskStream> stream;  // or an in-order stream
    std::string format = "raw";          // what the bytes are: raw, vmdk, vhd, qcow2, ...
    // A stream that can be converted as it arrives (a stream-optimized VMDK); other streams are
    // received into a local file first and converted from there.
    bool streamable = false;
    std::uint64_t expected_bytes = 0;  // the stream's length when known ahead; 0: unknown
    // The bytes of data the disk holds (what the output needs room for), when the platform says;
    // 0: unknown. The free-space pre-flight counts it, else expected_bytes, else a block
    // source's allocated size.
    std::uint64_t data_bytes = 0;
    nlohmann::json identity;           // what the bytes are: resume state matches on it
    std::string label;                 // for messages: device key, URL, object name
    // A stream's transient failures are retried from the byte reached, with exponential backoff
    // and jitter, at most this many tries in a row that move no byte.
    unsigned max_attempts = 5;
    std::chrono::milliseconds initial_backoff{250};
    std::chrono::milliseconds max_backoff{8000};
};

// What arrived of a streamed disk, for PreparedExport::verify.
struct ReceivedDisk {
    std::string path;  // the local file holding the bytes; empty when converted as they arrived
    std::uint64_t size = 0;
    std::string sha1, sha256;  // lower-case hex
};

struct ExportPlan {
    bool quiesce = false;   // quiesce the guest for the snapshot of a running VM
    std::string transport;  // provider-specific; empty: the provider's choice (vSphere: auto, nfc, datastore;
                            // aws: ebs-direct, export-task)
    CancelToken cancel;
    // The provider names the step it is taking (snapshot, lease), for progress reports.
    std::function<void(const std::string &)> phase;
    // The run may be interrupted and run again with resume: a provider that reads blocks keeps
    // what it fetched (and the snapshot it read) in work_dir (the output folder) when the export
    // fails, and a run with resume starts from there instead of fetching it again.
    bool resume = false;
    std::string work_dir;
};

// An export in progress on the platform. abort() or complete() ends it; destroying it without
// either aborts it.
class PreparedExport {
public:
    virtual ~PreparedExport() = default;
    // The VM as described when the export was prepared; disks in the order of disks().
    [[nodiscard]] virtual const VirtualMachine &vm() const = 0;
    virtual std::vector<ExportDisk> &disks() = 0;
    // How the disks are read: ExportVm, ExportSnapshot, datastore, block reads, ...
    [[nodiscard]] virtual std::string method() const = 0;
    [[nodiscard]] virtual bool snapshot_used() const { return false; }
    // keepalive() runs this often while disks move (0: never) with the percentage done, so that a
    // lease does not expire during long transfers.
    [[nodiscard]] virtual std::chrono::seconds keepalive_interval() const { return std::chrono::seconds(0); }
    virtual void keepalive(int percent) { (void)percent; }
    // Every streamed disk arrived (received[i] belongs to disks()[i]; empty for block disks):
    // compare with what the platform vouches for. checksum_mismatch when they differ.
    virtual Result<void> verify(const std::vector<ReceivedDisk> &received) {
        (void)received;
        return success();
    }
    // Releases what the export holds on the platform (completes a lease, removes the snapshot).
    virtual Result<void> complete() = 0;
    // After a failure or cancel: releases everything it can, also after a cancel; returns a note
    // for each thing it could not release.
    virtual std::vector<std::string> abort(const std::string &reason) noexcept = 0;
};

struct SnapshotInfo {
    std::string id;       // the platform's id (vSphere: the snapshot's managed object id)
    std::string name;
    std::string created;  // ISO 8601, as the platform says
    std::string parent;   // id of the parent snapshot, empty for a root
};

// Changed-block tracking of a VM's disks.
struct DiskTracking {
    std::string disk_id;    // as VmDisk::id
    std::string label;
    std::string change_id;  // the disk's current change id; empty when the platform gives none
};

struct TrackingStatus {
    bool enabled = false;
    std::vector<DiskTracking> disks;
};

struct BackupPlan {
    // The change id each disk (by VmDisk::id) was last backed up at; a disk missing here, or
    // with an id the platform no longer knows, is copied in full.
    std::map<std::string, std::string> previous_change_ids;
    bool quiesce = false;
    CancelToken cancel;
    std::function<void(const std::string &)> phase;  // snapshot, changes, ...
};

// One disk of a prepared backup: where to read it at this point, and what changed.
struct BackupDisk {
    std::string disk_id;
    // Blocks (readable at any offset) in source.format; or, where the platform refuses reads at
    // an offset, the whole disk as a stream of which only the changed parts are kept.
    ExportDisk source;
    std::string change_id;      // this point's change id: the next backup's starting point
    ChangedExtents changed;     // what to copy: since the previous change id, or every allocated area
    bool full = false;          // `changed` covers the whole disk's data, not a difference
    std::string notice;         // why a disk is copied in full when it was asked incrementally
    std::uint64_t capacity = 0; // the disk's size at this point
};

// A backup in progress on the platform (its snapshot held). complete() or abort() ends it;
// destroying it without either aborts it.
class PreparedBackup {
public:
    virtual ~PreparedBackup() = default;
    [[nodiscard]] virtual const VirtualMachine &vm() const = 0;
    virtual std::vector<BackupDisk> &disks() = 0;
    [[nodiscard]] virtual std::string snapshot() const = 0;  // the point's snapshot id, if any
    // As PreparedExport's: keeps a lease alive while streamed disks move.
    [[nodiscard]] virtual std::chrono::seconds keepalive_interval() const { return std::chrono::seconds(0); }
    virtual void keepalive(int percent) { (void)percent; }
    // A streamed disk arrived (index in disks()): compare with what the platform vouches for.
    virtual Result<void> verify(std::size_t disk, const ReceivedDisk &received) {
        (void)disk;
        (void)received;
        return success();
    }
    virtual Result<void> complete() = 0;                      // releases a lease, removes the snapshot
    virtual std::vector<std::string> abort(const std::string &reason) noexcept = 0;
};

// Stopping a VM for a cutover: the guest is asked to shut down; only when `force` is set is it
// powered off after `guest_timeout` (or at once when the guest cannot be asked: no tools).
struct StopOptions {
    std::chrono::seconds guest_timeout{300};
    bool force = false;
    CancelToken cancel;
};

struct StopResult {
    std::string how;  // already_off, guest_shutdown or forced_power_off
    double seconds = 0;
};

class ProviderSession {
public:
    virtual ~ProviderSession() = default;
    virtual Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) = 0;
    // not_found when no VM has that name, path or id.
    virtual Result<VirtualMachine> describe(const std::string &vm) = 0;
    // Disk `index` (0-based, in describe()'s order) as bytes in the format describe() gives as the
    // disk's file_format (raw when empty). unsupported unless the provider has block_reads.
    virtual Result<std::shared_ptr<ByteSource>> open_disk(const std::string &vm, std::size_t index);
    // Starts an export of `vm` (as the caller named it; `described` is what describe() said of
    // it): takes the snapshot a consistent copy needs, opens leases. The default, for providers
    // with block_reads, hands over every disk through open_disk().
    virtual Result<std::unique_ptr<PreparedExport>> prepare_export(const std::string &vm, const VirtualMachine &described,
                                                                   const ExportPlan &plan);
    // Snapshots (providers with the snapshot capability; unsupported otherwise). create_snapshot
    // returns the new snapshot's id.
    virtual Result<std::vector<SnapshotInfo>> list_snapshots(const std::string &vm);
    virtual Result<std::string> create_snapshot(const std::string &vm, const std::string &name, bool quiesce);
    virtual Result<void> remove_snapshot(const std::string &vm, const std::string &snapshot_id);
    // Changed-block tracking (providers with changed_extents; unsupported otherwise).
    virtual Result<TrackingStatus> tracking_status(const std::string &vm);
    virtual Result<TrackingStatus> enable_tracking(const std::string &vm, bool enabled);
    // Takes the point's snapshot and works out each disk's changes since plan's change ids.
    virtual Result<std::unique_ptr<PreparedBackup>> prepare_backup(const std::string &vm, const VirtualMachine &described,
                                                                   const BackupPlan &plan);
    // Stops the VM (StopOptions); unsupported for providers that cannot.
    virtual Result<StopResult> stop_vm(const std::string &vm, const StopOptions &options);
};

class Provider {
public:
    virtual ~Provider() = default;
    [[nodiscard]] virtual std::string name() const = 0;
    [[nodiscard]] virtual std::string description() const = 0;
    [[nodiscard]] virtual std::uint32_t capabilities() const = 0;  // ProviderCapability bits
    // JSON Schema (draft 7) of the config connect() takes.
    [[nodiscard]] virtual nlohmann::json config_schema() const = 0;
    // Where it comes from: "built-in", or the plugin's file.
    [[nodiscard]] virtual std::string origin() const { return "built-in"; }
    // Opens a session. What the config leaves out comes from the platform's usual environment
    // variables and files. Wrong credentials are auth_failed.
    virtual Result<std::unique_ptr<ProviderSession>> connect(const nlohmann::json &config, const CancelToken &cancel) const = 0;
};

// Adds a provider; conflict when one of that name is registered already.
Result<void> register_provider(std::shared_ptr<const Provider> provider);
// Every provider: the built-in ones, then plugins (those of HSDK_PLUGIN_PATH are loaded on the
// first call), by name.
std::vector<std::shared_ptr<const Provider>> providers();
// not_found naming the known providers when there is none of that name.
Result<std::shared_ptr<const Provider>> find_provider(std::string_view name);

// Loads a provider plugin: a shared object exporting `hsdk_plugin_init` (see <hypersdk_plugin.h>),
// and registers it. Refuses ABI versions it does not know and names it does not accept.
Result<std::shared_ptr<const Provider>> load_provider_plugin(const std::string &path);
// HSDK_PLUGIN_PATH: colon-separated shared objects or folders (every *.so inside). Loaded once;
// a plugin that fails to load is reported through the log and skipped.
void load_plugins_from_environment();

}  // namespace hypersdk
