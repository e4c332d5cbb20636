// Exports and backups of Azure VMs: an incremental snapshot of each managed disk (tagged as ours),
// a read SAS from beginGetAccess, the snapshot's page blob read sparsely; endGetAccess always
// follows, also after a failure or cancel, and snapshots of ours are deleted unless kept (a
// backup keeps the newest, for the next page-range diff).
#include "providers/azure/session.hpp"

#include "cloud/azure/storage.hpp"
#include "core/json_fields.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace hypersdk::azure {
namespace {

using json = nlohmann::json;

using json_fields::str;

// Snapshot names: letters, digits, '-', '_', '.'; at most 80 characters.
std::string snapshot_name(const std::string &purpose, const std::string &disk) {
    std::string clean;
    for (char c : disk) clean += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '-';
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return fmt::format("hsdk-{}-{}-{}", purpose, clean.substr(0, 50), ms);
}

// What a prepared export or backup holds on Azure, released once.
class Held {
public:
    explicit Held(AzureSession &session) : session_(session) {}
    void created(std::string id) { created_.push_back(std::move(id)); }
    void granted(std::string id) { granted_.push_back(std::move(id)); }
    [[nodiscard]] const std::vector<std::string> &created_ids() const { return created_; }
    // Ends every grant; deletes `to_delete`.
    std::vector<std::string> release(const std::vector<std::string> &to_delete) noexcept {
        if (done_) return {};
        done_ = true;
        return session_.release(granted_, to_delete);
    }
    [[nodiscard]] bool done() const { return done_; }

private:
    AzureSession &session_;
    std::vector<std::string> created_, granted_;
    bool done_ = false;
};

class SnapshotExport final : public PreparedExport {
public:
    SnapshotExport(AzureSession &session, VirtualMachine vm, std::vector<ExportDisk> disks, std::unique_ptr<Held> held)
        : session_(session), vm_(std::move(vm)), disks_(std::move(disks)), held_(std::move(held)) {}
    ~SnapshotExport() override {
        if (!held_->done()) (void)abort("the export was dropped");
    }
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<ExportDisk> &disks() override { return disks_; }
    std::string method() const override { return "incremental snapshots read through beginGetAccess SAS (page ranges)"; }
    bool snapshot_used() const override { return true; }
    Result<void> complete() override {
        disks_.clear();
        for (const auto &n : held_->release(session_.settings().keep_snapshots ? std::vector<std::string>{} : held_->created_ids()))
            log(LogLevel::warn, n);
        return success();
    }
    std::vector<std::string> abort(const std::string &) noexcept override {
        disks_.clear();
        return held_->release(held_->created_ids());
    }

private:
    AzureSession &session_;
    VirtualMachine vm_;
    std::vector<ExportDisk> disks_;
    std::unique_ptr<Held> held_;
};

class SnapshotBackup final : public PreparedBackup {
public:
    SnapshotBackup(AzureSession &session, VirtualMachine vm, std::vector<BackupDisk> disks, std::unique_ptr<Held> held,
                   std::vector<std::string> previous)
        : session_(session), vm_(std::move(vm)), disks_(std::move(disks)), held_(std::move(held)), previous_(std::move(previous)) {}
    ~SnapshotBackup() override {
        if (!held_->done()) (void)abort("the backup was dropped");
    }
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<BackupDisk> &disks() override { return disks_; }
    std::string snapshot() const override {
        std::string ids;
        for (const auto &s : held_->created_ids()) ids += (ids.empty() ? "" : ",") + s;
        return ids;
    }
    Result<void> complete() override {
        disks_.clear();
        for (const auto &n : held_->release(session_.settings().keep_snapshots ? std::vector<std::string>{} : previous_))
            log(LogLevel::warn, n);
        return success();
    }
    std::vector<std::string> abort(const std::string &) noexcept override {
        disks_.clear();
        return held_->release(held_->created_ids());
    }

private:
    AzureSession &session_;
    VirtualMachine vm_;
    std::vector<BackupDisk> disks_;
    std::unique_ptr<Held> held_;
    std::vector<std::string> previous_;
};

}  // namespace

Result<std::string> AzureSession::snapshot_disk(const VirtualMachine &vm, const VmDisk &disk, const std::string &purpose) {
    HSDK_TRY(auto source, arm_->call("GET", disk.id, disk_api, nullptr, "ARM get disk " + disk.label));
    const std::string id_prefix = disk.id.substr(0, disk.id.find("/providers/"));
    std::string name = snapshot_name(purpose, str(source, "name"));
    const std::string path = fmt::format("{}/providers/Microsoft.Compute/snapshots/{}", id_prefix, name);
    json body{{"location", str(source, "location")},
              {"properties", {{"creationData", {{"createOption", "Copy"}, {"sourceResourceId", disk.id}}}, {"incremental", true}}},
              {"tags", {{"hsdk:created-by", "libhypersdk"}, {"hsdk:vm", vm.id.substr(vm.id.rfind('/') + 1)}, {"hsdk:purpose", purpose}}}};
    HSDK_TRY(auto made, arm_->long_running("PUT", path, disk_api, body, "ARM create snapshot " + name));
    const std::string id = made.is_object() && !str(made, "id").empty() ? str(made, "id") : path;
    return id;
}

Result<std::string> AzureSession::grant(const std::string &snapshot_id) {
    json body{{"access", "Read"}, {"durationInSeconds", settings_.access_seconds}};
    HSDK_TRY(auto answer, arm_->long_running("POST", snapshot_id + "/beginGetAccess", disk_api, body,
                                             "ARM beginGetAccess " + snapshot_id.substr(snapshot_id.rfind('/') + 1)));
    std::string sas = answer.is_object() ? str(answer, "accessSAS") : std::string();
    if (sas.empty() && answer.is_object() && answer.contains("properties"))
        sas = answer["properties"].value("output", json::object()).value("accessSAS", "");
    if (sas.empty()) return fail(Errc::remote_error, fmt::format("beginGetAccess on {} gave no accessSAS", snapshot_id));
    return sas;
}

std::vector<std::string> AzureSession::release(const std::vector<std::string> &granted, const std::vector<std::string> &to_delete) noexcept {
    std::vector<std::string> notes;
    cloud::azure::ArmSettings s = arm_settings_;
    s.cancel = CancelToken{};  // clean-up runs after a cancel too
    cloud::azure::Arm cleanup(credentials_, s);
    for (const auto &id : granted)
        if (auto r = cleanup.long_running("POST", id + "/endGetAccess", disk_api, nullptr, "ARM endGetAccess"); !r)
            notes.push_back(fmt::format("access to {} could not be ended ({}); its SAS stays valid until it expires", id, r.error().message));
    for (const auto &id : to_delete)
        if (auto r = cleanup.long_running("DELETE", id, disk_api, nullptr, "ARM delete snapshot"); !r && r.error().code != Errc::not_found)
            notes.push_back(fmt::format("snapshot {} could not be deleted ({}); delete it yourself", id, r.error().message));
    return notes;
}

Result<std::unique_ptr<PreparedExport>> AzureSession::prepare_export(const std::string &, const VirtualMachine &described,
                                                                     const ExportPlan &plan) {
    auto held = std::make_unique<Held>(*this);
    auto give_up = [&](Error e) -> Result<std::unique_ptr<PreparedExport>> {
        for (const auto &n : held->release(held->created_ids())) e.message += "; " + n;
        return fail(std::move(e));
    };
    std::vector<ExportDisk> disks;
    for (const auto &disk : described.disks) {
        if (auto c = plan.cancel.check(); !c) return give_up(c.error());
        if (plan.phase) plan.phase("snapshot " + disk.label);
        auto snap = snapshot_disk(described, disk, "export");
        if (!snap) return give_up(snap.error());
        held->created(snap.value());
        if (plan.phase) plan.phase("access " + disk.label);
        auto sas = grant(snap.value());
        if (!sas) return give_up(sas.error());
        held->granted(snap.value());
        HttpSourceOptions http = settings_.http;
        http.cancel = plan.cancel;
        auto source = cloud::azure::open_required_page_blob(sas.value(), http);
        if (!source) return give_up(source.error());
        ExportDisk d;
        d.blocks = std::move(source).value();
        d.requests_in_flight = 16;  // well inside a blob's documented 500 requests per second
        d.format = "vhd";
        d.label = fmt::format("{} ({})", disk.label, snap.value().substr(snap.value().rfind('/') + 1));
        d.identity = json{{"disk", disk.id}, {"snapshot", snap.value()}};
        disks.push_back(std::move(d));
    }
    return std::unique_ptr<PreparedExport>(new SnapshotExport(*this, described, std::move(disks), std::move(held)));
}

Result<std::unique_ptr<PreparedBackup>> AzureSession::prepare_backup(const std::string &, const VirtualMachine &described,
                                                                     const BackupPlan &plan) {
    auto held = std::make_unique<Held>(*this);
    auto give_up = [&](Error e) -> Result<std::unique_ptr<PreparedBackup>> {
        for (const auto &n : held->release(held->created_ids())) e.message += "; " + n;
        return fail(std::move(e));
    };
    io::http::ClientOptions co;
    co.tls.insecure = settings_.http.insecure;
    co.tls.ca_file = settings_.http.ca_file;
    co.cancel = plan.cancel;
    io::http::Client storage(co);
    std::vector<BackupDisk> disks;
    std::vector<std::string> previous;
    for (const auto &disk : described.disks) {
        if (auto c = plan.cancel.check(); !c) return give_up(c.error());
        if (plan.phase) plan.phase("snapshot " + disk.label);
        auto snap = snapshot_disk(described, disk, "backup");
        if (!snap) return give_up(snap.error());
        held->created(snap.value());
        auto sas = grant(snap.value());
        if (!sas) return give_up(sas.error());
        held->granted(snap.value());
        HttpSourceOptions http = settings_.http;
        http.cancel = plan.cancel;
        auto source = cloud::azure::open_required_page_blob(sas.value(), http);
        if (!source) return give_up(source.error());
        BackupDisk b;
        b.disk_id = disk.id;
        b.change_id = snap.value();
        b.capacity = disk.capacity_bytes;
        b.source.blocks = source.value();
        b.source.format = "vhd";
        b.source.label = fmt::format("{} ({})", disk.label, snap.value().substr(snap.value().rfind('/') + 1));
        b.source.identity = json{{"disk", disk.id}, {"snapshot", snap.value()}};
        bool incremental = false;
        if (auto prev = plan.previous_change_ids.find(disk.id); prev != plan.previous_change_ids.end() && !prev->second.empty()) {
            previous.push_back(prev->second);
            if (plan.phase) plan.phase("changes " + disk.label);
            auto prev_sas = grant(prev->second);
            if (prev_sas) {
                held->granted(prev->second);
                cloud::azure::PageRangeQuery q;
                q.previous_snapshot_url = prev_sas.value();
                auto diff = cloud::azure::get_page_ranges(storage, sas.value(), source.value()->size(), http, q);
                if (diff) {
                    for (const auto &r : diff.value())
                        if (r.start < b.capacity) b.changed.add(r.start, std::min(r.end, b.capacity) - r.start);
                    incremental = true;
                } else if (diff.error().code == Errc::cancelled) {
                    return give_up(diff.error());
                } else {
                    b.notice = fmt::format("the page-range diff against {} was refused ({}): copied in full", prev->second, diff.error().message);
                }
            } else if (prev_sas.error().code == Errc::not_found) {
                b.notice = fmt::format("the previous snapshot {} is gone: copied in full", prev->second);
            } else {
                return give_up(prev_sas.error());
            }
        }
        if (!incremental) {
            auto runs = source.value()->allocation(0, b.capacity);
            if (!runs) return give_up(runs.error());
            for (const auto &r : runs.value())
                if (r.data) b.changed.add(r.offset, r.length);
            b.full = true;
        }
        disks.push_back(std::move(b));
    }
    return std::unique_ptr<PreparedBackup>(new SnapshotBackup(*this, described, std::move(disks), std::move(held), std::move(previous)));
}

}  // namespace hypersdk::azure
