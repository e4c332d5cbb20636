#include "providers/vsphere/cbt.hpp"

#include "providers/http_disk_stream.hpp"
#include "providers/vsphere/lease.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <random>

namespace hypersdk::vsphere {
namespace {

std::uint64_t to_u64(const std::string &s) { return static_cast<std::uint64_t>(std::strtoull(s.c_str(), nullptr, 10)); }

std::string random_hex(std::size_t digits) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string out;
    while (out.size() < digits) out += fmt::format("{:016x}", rng());
    return out.substr(0, digits);
}

// A random (version 4) UUID, as the snapshot's name carries it.
std::string random_uuid() {
    std::string h = random_hex(32);
    h[12] = '4';
    h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
    return fmt::format("{}-{}-{}-{}-{}", h.substr(0, 8), h.substr(8, 4), h.substr(12, 4), h.substr(16, 4), h.substr(20, 12));
}

Result<bool> tracking_enabled(Session &s, const MoRef &vm) {
    HSDK_TRY(auto o, retrieve_one(s, vm, {"config.changeTrackingEnabled"}));
    return o.text("config.changeTrackingEnabled") == "true";
}

// A disk of a snapshot's (or the VM's) configuration.
struct ConfigDisk {
    std::string key, file, change_id;
    std::uint64_t capacity = 0;
};

std::vector<ConfigDisk> disks_of(const xml::Element &devices) {
    std::vector<ConfigDisk> out;
    for (const auto &d : devices.children) {
        if (d.xsi_type() != "VirtualDisk") continue;
        ConfigDisk c;
        c.key = d.child_text("key");
        c.capacity = to_u64(d.child_text("capacityInBytes"));
        if (c.capacity == 0) c.capacity = to_u64(d.child_text("capacityInKB")) * 1024;
        if (const xml::Element *b = d.child("backing")) {
            c.file = b->child_text("fileName");
            c.change_id = b->child_text("changeId");
        }
        out.push_back(std::move(c));
    }
    return out;
}

// QueryChangedDiskAreas from offset 0 to the capacity: one reply holds a limited number of areas
// and says how far it reached, so the next call starts there.
Result<ChangedExtents> query_changes(Session &s, const MoRef &vm, const MoRef &snapshot, const ConfigDisk &disk,
                                     const std::string &since, const CancelToken &cancel) {
    ChangedExtents out;
    std::uint64_t start = 0;
    while (start < disk.capacity) {
        HSDK_TRYV(cancel.check());
        SoapCall call("QueryChangedDiskAreas", vm);
        call.ref("snapshot", snapshot).integer("deviceKey", std::strtoll(disk.key.c_str(), nullptr, 10));
        call.integer("startOffset", static_cast<std::int64_t>(start)).text("changeId", since);
        HSDK_TRY(auto resp, s.invoke(call));
        const xml::Element *rv = resp.child("returnval");
        if (rv == nullptr) return fail(Errc::remote_error, "QueryChangedDiskAreas returned nothing");
        for (const xml::Element *a : rv->children_named("changedArea")) {
            const std::uint64_t off = to_u64(a->child_text("start")), len = to_u64(a->child_text("length"));
            if (off + len > disk.capacity || off + len < off)
                return fail(Errc::remote_error, fmt::format("QueryChangedDiskAreas: an area [{}, +{}) lies beyond the disk's {} bytes",
                                                            off, len, disk.capacity));
            out.add(off, len);
        }
        const std::uint64_t reached = to_u64(rv->child_text("startOffset")) + to_u64(rv->child_text("length"));
        if (reached <= start)
            return fail(Errc::remote_error, fmt::format("QueryChangedDiskAreas made no progress at offset {} of {}", start, disk.capacity));
        start = reached;
    }
    return out;
}

bool change_id_refused(const Error &e) {
    return e.code == Errc::remote_error && (e.message.find("fault InvalidArgument") != std::string::npos ||
                                            e.message.find("fault FileFault") != std::string::npos);
}

class VsphereBackup final : public PreparedBackup {
public:
    VsphereBackup(std::shared_ptr<Session> session, FoundVm found, BackupPlan plan)
        : session_(std::move(session)), found_(std::move(found)), plan_(std::move(plan)) {}
    ~VsphereBackup() override {
        if (!snapshot_.empty() || !lease_.empty()) (void)abort("the backup was abandoned");
    }

    Result<void> start() {
        HSDK_TRYV(clear_leftovers());
        HSDK_TRY(bool enabled, tracking_enabled(*session_, found_.ref));
        if (!enabled)
            return fail(Errc::invalid_argument,
                        fmt::format("changed-block tracking is off for VM '{}': turn it on first (hsdk cbt enable --vm {})",
                                    found_.vm.name, found_.vm.inventory_path));
        if (plan_.phase) plan_.phase("snapshot");
        const std::string name = fmt::format("{}{}", backup_snapshot_prefix, random_uuid());
        auto snap = create_snapshot(*session_, found_.ref, name, plan_.quiesce);
        if (!snap) return fail(snap.error().with_context("creating the backup snapshot"));
        snapshot_ = snap.value();

        if (plan_.phase) plan_.phase("changes");
        HSDK_TRY(auto o, retrieve_one(*session_, snapshot_, {"config.hardware.device"}));
        const xml::Element *devices = o.prop("config.hardware.device");
        if (devices == nullptr) return fail(Errc::remote_error, "the backup snapshot has no hardware configuration");
        const auto config_disks = disks_of(*devices);
        for (const auto &vd : found_.vm.disks) {
            auto it = std::find_if(config_disks.begin(), config_disks.end(), [&](const ConfigDisk &c) { return c.key == vd.id; });
            if (it == config_disks.end())
                return fail(Errc::remote_error, fmt::format("the backup snapshot has no disk {} ({})", vd.id, vd.label));
            HSDK_TRY(auto disk, backup_disk(vd, *it));
            disks_.push_back(std::move(disk));
            config_disks_.push_back(*it);
        }
        // Each disk read at its changed offsets over the datastore interface; where that is
        // refused, the snapshot's export stream brings the whole disk instead.
        std::vector<std::size_t> refused;
        for (std::size_t i = 0; i < disks_.size(); ++i) {
            auto source = open_snapshot_disk(found_.vm.disks[i], config_disks_[i]);
            if (source) {
                disks_[i].source = std::move(source).value();
            } else if (source.error().code == Errc::auth_failed || source.error().code == Errc::permission_denied) {
                log(LogLevel::warn, fmt::format("backup: {}; reading that disk from the snapshot's export stream instead (the whole "
                                                "disk is transferred, only the changes are kept)",
                                                source.error().message));
                refused.push_back(i);
            } else {
                return fail(source.error());
            }
        }
        if (!refused.empty()) HSDK_TRYV(stream_from_lease(refused));
        return success();
    }

    const VirtualMachine &vm() const override { return found_.vm; }
    std::vector<BackupDisk> &disks() override { return disks_; }
    std::string snapshot() const override { return snapshot_.value; }

    std::chrono::seconds keepalive_interval() const override {
        if (lease_.empty()) return std::chrono::seconds(0);
        return lease_keepalive_interval(lease_timeout_);
    }
    void keepalive(int percent) override {
        if (!lease_.empty()) (void)lease_progress(*session_, lease_, percent);
    }

    // The lease's manifest: SHA-1 and size of each stream the server sent.
    Result<void> verify(std::size_t disk, const ReceivedDisk &received) override {
        if (lease_.empty() || disk >= device_keys_.size() || device_keys_[disk].empty()) return success();
        HSDK_TRY(auto manifest, lease_manifest(*session_, lease_));
        for (const auto &m : manifest) {
            if (m.key != device_keys_[disk]) continue;
            if (m.size != received.size || m.sha1 != received.sha1)
                return fail(Errc::checksum_mismatch,
                            fmt::format("checksum mismatch: disk {} ({}): received {} bytes with SHA-1 {}, the server's manifest says "
                                        "{} bytes with SHA-1 {}",
                                        found_.vm.disks[disk].id, m.key, received.size, received.sha1, m.size, m.sha1));
        }
        return success();
    }

    Result<void> complete() override {
        if (!lease_.empty()) {
            (void)lease_progress(*session_, lease_, 100);
            HSDK_TRYV(lease_complete(*session_, lease_));
            lease_ = {};
        }
        if (snapshot_.empty()) return success();
        auto removed = remove_snapshot(*session_, snapshot_);
        if (!removed) return fail(removed.error().with_context("removing the backup snapshot"));
        snapshot_ = {};
        return success();
    }

    std::vector<std::string> abort(const std::string &reason) noexcept override {
        std::vector<std::string> notes;
        if (!lease_.empty()) {
            if (auto a = lease_abort(*session_, lease_, reason); !a) notes.push_back("could not abort the export lease: " + a.error().message);
            lease_ = {};
        }
        if (!snapshot_.empty()) {
            if (auto r = remove_snapshot(*session_, snapshot_); !r)
                notes.push_back(fmt::format("could not remove the backup snapshot {}: {}", snapshot_.value, r.error().message));
            snapshot_ = {};
        }
        return notes;
    }

private:
    // A crashed run's snapshot is removed (never more than one of ours); a VM with too many
    // snapshots is refused before one more is made.
    Result<void> clear_leftovers() {
        HSDK_TRY(auto snapshots, list_vm_snapshots(*session_, found_.ref));
        std::size_t kept = 0;
        for (const auto &s : snapshots) {
            if (s.name.rfind(backup_snapshot_prefix, 0) != 0) {
                ++kept;
                continue;
            }
            log(LogLevel::warn, fmt::format("backup: removing snapshot '{}' ({}) that an earlier backup left behind", s.name, s.id));
            HSDK_TRYV(remove_snapshot(*session_, MoRef{"VirtualMachineSnapshot", s.id}));
        }
        if (kept >= max_existing_snapshots)
            return fail(Errc::conflict, fmt::format("VM '{}' already has {} snapshots; a backup needs one more and vSphere allows 32 "
                                                    "(and slows down long before): remove some first",
                                                    found_.vm.name, kept));
        return success();
    }

    Result<BackupDisk> backup_disk(const VmDisk &vd, const ConfigDisk &c) {
        BackupDisk d;
        d.disk_id = vd.id;
        d.capacity = c.capacity;
        d.change_id = c.change_id;
        if (d.change_id.empty())
            return fail(Errc::remote_error, fmt::format("disk {} ({}) has no change id in the backup snapshot although changed-block "
                                                        "tracking is on",
                                                        vd.id, vd.label));
        auto prev = plan_.previous_change_ids.find(vd.id);
        const std::string since = prev == plan_.previous_change_ids.end() ? std::string() : prev->second;
        if (!since.empty()) {
            auto changes = query_changes(*session_, found_.ref, snapshot_, c, since, plan_.cancel);
            if (changes) {
                d.changed = std::move(changes).value();
            } else if (change_id_refused(changes.error())) {
                d.full = true;
                d.notice = fmt::format("the server no longer knows change id '{}' (tracking was reset or the disk was "
                                       "replaced): disk {} ({}) is copied in full",
                                       since, vd.id, vd.label);
                log(LogLevel::warn, "backup: " + d.notice);
            } else {
                return fail(changes.error());
            }
        } else {
            d.full = true;
        }
        if (d.full) {
            HSDK_TRY(d.changed, query_changes(*session_, found_.ref, snapshot_, c, "*", plan_.cancel));
        }
        return d;
    }

    // ExportSnapshot: the lease's disk URLs serve stream-optimized VMDKs of the snapshot.
    Result<void> stream_from_lease(const std::vector<std::size_t> &which) {
        HSDK_TRY(lease_, export_snapshot(*session_, snapshot_));
        device_keys_.assign(disks_.size(), std::string());
        HSDK_TRY(auto info, wait_lease_ready(*session_, lease_));
        lease_timeout_ = info.timeout_seconds;
        std::vector<const LeaseDevice *> disk_devices;
        for (const auto &dev : info.devices)
            if (dev.disk) disk_devices.push_back(&dev);
        if (disk_devices.size() != disks_.size())
            return fail(Errc::remote_error, fmt::format("the export lease offers {} disks but the VM has {}", disk_devices.size(), disks_.size()));
        auto co = session_->http().options();
        co.request_timeout = std::chrono::seconds(0);
        std::shared_ptr<io::http::Client> client = session_->http().derive(co);
        const auto policy = session_->retry_policy();
        for (std::size_t i : which) {
            const LeaseDevice &dev = *disk_devices[i];
            ExportDisk d;
            d.stream = std::make_shared<streams::HttpDiskStream>(*client, dev.url, std::vector<std::string>{}, client);
            d.format = "vmdk";
            d.streamable = true;
            d.expected_bytes = dev.file_size;
            d.label = fmt::format("disk {} ({})", found_.vm.disks[i].id, io::http::redact_url(dev.url));
            d.identity = {{"vm", found_.vm.instance_uuid.empty() ? found_.vm.uuid : found_.vm.instance_uuid},
                          {"disk", found_.vm.disks[i].id}, {"change_id", disks_[i].change_id}, {"source", "nfc"}};
            d.max_attempts = policy.max_attempts;
            d.initial_backoff = policy.initial_delay;
            d.max_backoff = policy.max_delay;
            disks_[i].source = std::move(d);
            device_keys_[i] = dev.key;
        }
        (void)lease_progress(*session_, lease_, 0);
        return success();
    }

    // The snapshot's disk (its backing file, and the parents it names) over the datastore HTTP
    // interface, read by the VMDK driver with Range requests; the session cookie travels along
    // and is renewed if the session ends during a long copy.
    Result<ExportDisk> open_snapshot_disk(const VmDisk &vd, const ConfigDisk &c) {
        auto [ds, path] = split_datastore_path(c.file);
        if (ds.empty() || path.empty())
            return fail(Errc::unsupported, fmt::format("unsupported: disk {} ({}) has no datastore file to read ('{}')", vd.id, vd.label, c.file));
        const std::string url = fmt::format("{}/folder/{}?dcPath={}&dsName={}", session_->server(), io::http::percent_encode(path, true),
                                            io::http::percent_encode(found_.datacenter_path, true), io::http::percent_encode(ds, false));
        HttpSourceOptions h;
        const auto &co = session_->options();
        h.insecure = co.insecure;
        h.ca_file = co.ca_file;
        h.thumbprint = co.thumbprint;
        h.max_attempts = co.max_attempts;
        h.timeout_seconds = static_cast<unsigned>(std::max<std::int64_t>(1, co.stall_timeout.count()));
        h.cancel = plan_.cancel;
        if (auto cookie = session_->cookie_header(); !cookie.empty()) h.headers.push_back(cookie);
        std::weak_ptr<Session> weak = session_;
        h.refresh_headers = [weak]() -> Result<std::vector<std::string>> {
            auto s = weak.lock();
            if (!s) return fail(Errc::cancelled, "the vSphere session is gone");
            HSDK_TRYV(s->relogin());
            return std::vector<std::string>{s->cookie_header()};
        };
        auto source = open_byte_source(url, h);
        if (!source) return fail(source.error().with_context(fmt::format("reading disk {} ({}) from the datastore", vd.id, vd.label)));
        ExportDisk d;
        d.blocks = std::move(source).value();
        d.requests_in_flight = 8;  // the host serving the datastore is shared with running VMs
        d.format = "vmdk";
        d.label = fmt::format("disk {} ({})", vd.id, c.file);
        d.identity = {{"vm", found_.vm.instance_uuid.empty() ? found_.vm.uuid : found_.vm.instance_uuid}, {"disk", vd.id}, {"change_id", c.change_id}};
        return d;
    }

    std::shared_ptr<Session> session_;
    FoundVm found_;
    BackupPlan plan_;
    MoRef snapshot_, lease_;
    int lease_timeout_ = 0;
    std::vector<BackupDisk> disks_;
    std::vector<ConfigDisk> config_disks_;
    std::vector<std::string> device_keys_;  // lease device key per disk read from the export stream
};

}  // namespace

Result<TrackingStatus> tracking_status(Session &s, const FoundVm &found) {
    TrackingStatus st;
    HSDK_TRY(st.enabled, tracking_enabled(s, found.ref));
    HSDK_TRY(auto o, retrieve_one(s, found.ref, {"config.hardware.device"}));
    std::vector<ConfigDisk> current;
    if (const xml::Element *devices = o.prop("config.hardware.device")) current = disks_of(*devices);
    for (const auto &vd : found.vm.disks) {
        DiskTracking t;
        t.disk_id = vd.id;
        t.label = vd.label;
        for (const auto &c : current)
            if (c.key == vd.id) t.change_id = c.change_id;
        st.disks.push_back(std::move(t));
    }
    return st;
}

Result<void> set_tracking(Session &s, const FoundVm &found, bool enabled) {
    SoapCall call("ReconfigVM_Task", found.ref);
    call.raw(fmt::format("<spec xsi:type=\"VirtualMachineConfigSpec\"><changeTrackingEnabled>{}</changeTrackingEnabled></spec>",
                         enabled ? "true" : "false"));
    HSDK_TRY(auto resp, s.invoke(call, CallKind::action));
    const xml::Element *task = resp.child("returnval");
    if (task == nullptr) return fail(Errc::remote_error, "ReconfigVM_Task returned no task");
    HSDK_TRYV(wait_for_task(s, moref_of(*task)));
    if (!enabled) return success();
    // Tracking takes effect at the disks' next stun/unstun: a snapshot created and removed.
    auto snap = create_snapshot(s, found.ref, fmt::format("{}activate-{}", backup_snapshot_prefix, random_hex(8)), false);
    if (!snap) return fail(snap.error().with_context("creating the snapshot that activates changed-block tracking"));
    return remove_snapshot(s, snap.value());
}

Result<std::unique_ptr<PreparedBackup>> prepare_backup(std::shared_ptr<Session> session, FoundVm found, const BackupPlan &plan) {
    auto b = std::make_unique<VsphereBackup>(std::move(session), std::move(found), plan);
    if (auto started = b->start(); !started) {
        Error err = started.error();
        for (const auto &n : b->abort(err.message)) err.message += "; " + n;
        return fail(err);
    }
    return std::unique_ptr<PreparedBackup>(std::move(b));
}

}  // namespace hypersdk::vsphere
