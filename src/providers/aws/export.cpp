// Exports and backups of EC2 instances: snapshots of ours, read through the EBS direct APIs and
// deleted afterwards (unless kept); or an EC2 export task whose S3 object converts as it is read.
#include "providers/aws/session.hpp"

#include "cloud/aws/locations.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

namespace hypersdk::aws {
namespace {

using namespace cloud::aws;

// What a resumable export keeps in the output folder: a marker naming the snapshots it reads
// (".hsdk-resume-aws-<instance>.json") and the blocks fetched so far (".hsdk-resume-aws-<instance>/").
struct ResumeState {
    std::string marker, cache_dir;
    static ResumeState in(const std::string &work_dir, const std::string &instance) {
        const std::string base = work_dir + "/.hsdk-resume-aws-" + instance;
        return {base + ".json", base};
    }
    // volume id -> snapshot id, as an earlier run recorded them.
    [[nodiscard]] std::map<std::string, std::string> read() const {
        std::map<std::string, std::string> out;
        std::ifstream in(marker);
        auto j = nlohmann::json::parse(in, nullptr, false);
        if (j.is_object() && j.contains("snapshots") && j["snapshots"].is_object())
            for (const auto &[volume, snap] : j["snapshots"].items())
                if (snap.is_string()) out[volume] = snap.get<std::string>();
        return out;
    }
    Result<void> write(const std::string &instance, const std::map<std::string, std::string> &snapshots) const {
        std::error_code ec;
        std::filesystem::create_directories(cache_dir, ec);
        const std::string tmp = marker + ".tmp";
        {
            std::ofstream out(tmp, std::ios::trunc);
            out << nlohmann::json{{"instance", instance}, {"snapshots", snapshots}}.dump(2) << "\n";
            if (!out) return fail(Errc::io_error, fmt::format("cannot write the resume state '{}'", tmp));
        }
        if (std::rename(tmp.c_str(), marker.c_str()) != 0) return fail(Errc::io_error, fmt::format("cannot write the resume state '{}'", marker));
        return success();
    }
    void remove() const {
        std::error_code ec;
        std::filesystem::remove_all(cache_dir, ec);
        std::filesystem::remove(marker, ec);
    }
};

// The snapshots behind an export: complete() deletes them unless kept; abort() deletes them too,
// unless the run is resumable, which keeps them and the blocks fetched for the next run.
class SnapshotExport final : public PreparedExport {
public:
    SnapshotExport(AwsSession &session, VirtualMachine vm, std::vector<ExportDisk> disks, std::vector<std::string> snapshots,
                   std::optional<ResumeState> resume)
        : session_(session), vm_(std::move(vm)), disks_(std::move(disks)), snapshots_(std::move(snapshots)), resume_(std::move(resume)) {}
    ~SnapshotExport() override {
        if (!done_) (void)abort("the export was dropped");
    }
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<ExportDisk> &disks() override { return disks_; }
    std::string method() const override { return "EBS direct APIs (GetSnapshotBlock)"; }
    bool snapshot_used() const override { return true; }
    Result<void> complete() override {
        done_ = true;
        disks_.clear();  // the sources' fetchers stop before their snapshots go
        if (resume_) resume_->remove();
        if (session_.settings().keep_snapshots) {
            log(LogLevel::info, fmt::format("keeping snapshots {} (keep_snapshots)", ids()));
            return success();
        }
        auto notes = session_.delete_snapshots(snapshots_);
        for (const auto &n : notes) log(LogLevel::warn, n);
        return success();
    }
    std::vector<std::string> abort(const std::string &) noexcept override {
        done_ = true;
        disks_.clear();
        if (resume_)
            return {fmt::format("snapshots {} and the blocks fetched so far are kept for resume: run again with resume to "
                                "continue, or without it to delete them",
                                ids())};
        return session_.delete_snapshots(snapshots_);
    }

private:
    std::string ids() const {
        std::string out;
        for (const auto &s : snapshots_) out += (out.empty() ? "" : ", ") + s;
        return out;
    }

    AwsSession &session_;
    VirtualMachine vm_;
    std::vector<ExportDisk> disks_;
    std::vector<std::string> snapshots_;
    std::optional<ResumeState> resume_;
    bool done_ = false;
};

// An EC2 export task's S3 object: complete() deletes the object (unless kept); abort() cancels a
// task still running and deletes what it wrote.
class TaskExport final : public PreparedExport {
public:
    TaskExport(AwsSession &session, VirtualMachine vm, std::vector<ExportDisk> disks, Ec2ExportTask task)
        : session_(session), vm_(std::move(vm)), disks_(std::move(disks)), task_(std::move(task)) {}
    ~TaskExport() override {
        if (!done_) (void)abort("the export was dropped");
    }
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<ExportDisk> &disks() override { return disks_; }
    std::string method() const override { return fmt::format("EC2 export task {} (s3://{}/{})", task_.id, task_.bucket, task_.key); }
    Result<void> complete() override {
        done_ = true;
        disks_.clear();
        if (!session_.settings().keep_snapshots)
            if (auto n = delete_object(); !n.empty()) log(LogLevel::warn, n);
        return success();
    }
    std::vector<std::string> abort(const std::string &) noexcept override {
        done_ = true;
        disks_.clear();
        std::vector<std::string> notes;
        if (auto n = delete_object(); !n.empty()) notes.push_back(n);
        return notes;
    }

private:
    std::string delete_object() noexcept {
        ClientSettings s = session_.client().settings();
        s.cancel = CancelToken{};
        s.max_attempts = 3;
        Client cleanup(session_.client().config(), s);
        Call c;
        c.service = "s3";
        c.method = "DELETE";
        c.path = fmt::format("/{}/{}", task_.bucket, uri_encode(task_.key, true));
        c.what = fmt::format("S3 DeleteObject s3://{}/{}", task_.bucket, task_.key);
        if (!session_.client().config().custom_endpoint("s3")) return {};  // path-style only where we address so
        if (auto r = cleanup.call(c); !r && r.error().code != Errc::not_found)
            return fmt::format("the exported object s3://{}/{} could not be deleted ({}); delete it yourself", task_.bucket, task_.key,
                               r.error().message);
        return {};
    }

    AwsSession &session_;
    VirtualMachine vm_;
    std::vector<ExportDisk> disks_;
    Ec2ExportTask task_;
    bool done_ = false;
};

// A backup point: the new snapshots are kept (the next incremental starts from them); complete()
// deletes the previous point's snapshots of ours, abort() the new ones.
class SnapshotBackup final : public PreparedBackup {
public:
    SnapshotBackup(AwsSession &session, VirtualMachine vm, std::vector<BackupDisk> disks, std::vector<std::string> created,
                   std::vector<std::string> previous)
        : session_(session), vm_(std::move(vm)), disks_(std::move(disks)), created_(std::move(created)), previous_(std::move(previous)) {}
    ~SnapshotBackup() override {
        if (!done_) (void)abort("the backup was dropped");
    }
    const VirtualMachine &vm() const override { return vm_; }
    std::vector<BackupDisk> &disks() override { return disks_; }
    std::string snapshot() const override {
        std::string ids;
        for (const auto &s : created_) ids += (ids.empty() ? "" : ",") + s;
        return ids;
    }
    Result<void> complete() override {
        done_ = true;
        disks_.clear();
        if (session_.settings().keep_snapshots) return success();
        for (const auto &n : session_.delete_snapshots(previous_)) log(LogLevel::warn, n);
        return success();
    }
    std::vector<std::string> abort(const std::string &) noexcept override {
        done_ = true;
        disks_.clear();
        return session_.delete_snapshots(created_);
    }

private:
    AwsSession &session_;
    VirtualMachine vm_;
    std::vector<BackupDisk> disks_;
    std::vector<std::string> created_, previous_;
    bool done_ = false;
};

ChangedExtents extents_of(const std::vector<ByteRun> &runs) {
    ChangedExtents out;
    for (const auto &r : runs)
        if (r.data) out.add(r.offset, r.length);
    return out;
}

}  // namespace

Result<std::unique_ptr<PreparedExport>> AwsSession::prepare_export(const std::string &, const VirtualMachine &described,
                                                                   const ExportPlan &plan) {
    if (plan.transport == "export-task") return prepare_export_task(described, plan);
    if (!plan.transport.empty() && plan.transport != "ebs-direct" && plan.transport != "auto")
        return fail(Errc::invalid_argument, fmt::format("aws exports use method ebs-direct (the default) or export-task, not '{}'", plan.transport));
    if (described.disks.empty()) return fail(Errc::invalid_argument, fmt::format("{} has no EBS volumes to export", described.id));
    std::optional<ResumeState> resume;
    std::vector<Ec2Snapshot> snapshots;
    if (!plan.work_dir.empty()) {
        const ResumeState state = ResumeState::in(plan.work_dir, described.id);
        const auto recorded = state.read();
        std::vector<std::string> recorded_ids;
        for (const auto &[_, id] : recorded) recorded_ids.push_back(id);
        if (plan.resume && recorded.size() == described.disks.size()) {
            // The snapshots an interrupted run read, if they are all still there and complete.
            Ec2 ec2(*client_);
            auto found = ec2.describe_snapshots(recorded_ids);
            bool usable = static_cast<bool>(found);
            for (const auto &d : described.disks) {
                auto r = recorded.find(d.id);
                const Ec2Snapshot *s = nullptr;
                if (usable && r != recorded.end())
                    for (const auto &f : found.value())
                        if (f.id == r->second) s = &f;
                if (s == nullptr || s->state != "completed") {
                    usable = false;
                    break;
                }
                snapshots.push_back(*s);
            }
            if (usable) log(LogLevel::info, fmt::format("{}: resuming from the snapshots of an interrupted run", described.id));
            else snapshots.clear();
        }
        if (snapshots.empty() && !recorded.empty()) {
            // Left by an earlier resumable run and not taken up: ours to clean.
            for (const auto &n : delete_snapshots(recorded_ids)) log(LogLevel::warn, n);
            state.remove();
        }
        if (plan.resume) resume = state;
    }
    if (snapshots.empty()) {
        HSDK_TRY(snapshots, snapshot_instance(described, "export", "", plan.cancel, plan.phase));
        if (resume) {
            std::map<std::string, std::string> record;
            for (std::size_t i = 0; i < snapshots.size(); ++i) record[described.disks[i].id] = snapshots[i].id;
            if (auto w = resume->write(described.id, record); !w) {
                Error e = w.error();
                for (const auto &n : delete_snapshots([&] {
                         std::vector<std::string> ids;
                         for (const auto &s : snapshots) ids.push_back(s.id);
                         return ids;
                     }()))
                    e.message += "; " + n;
                return fail(std::move(e));
            }
        }
    }
    std::vector<std::string> ids;
    for (const auto &s : snapshots) ids.push_back(s.id);
    std::vector<ExportDisk> disks;
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        EbsSourceOptions o = settings_.blocks;
        if (resume) o.cache_path = resume->cache_dir + "/" + snapshots[i].id;
        auto source = open_ebs_snapshot(client_, snapshots[i].id, o);
        if (!source) {
            Error e = source.error();
            if (!resume)
                for (const auto &n : delete_snapshots(ids)) e.message += "; " + n;
            return fail(std::move(e));
        }
        ExportDisk d;
        d.blocks = std::move(source).value();
        d.format = "raw";
        d.label = fmt::format("{} ({}, {})", described.disks[i].label, described.disks[i].id, snapshots[i].id);
        d.identity = nlohmann::json{{"volume", described.disks[i].id}, {"snapshot", snapshots[i].id}};
        disks.push_back(std::move(d));
    }
    return std::unique_ptr<PreparedExport>(new SnapshotExport(*this, described, std::move(disks), std::move(ids), std::move(resume)));
}

Result<std::unique_ptr<PreparedExport>> AwsSession::prepare_export_task(const VirtualMachine &described, const ExportPlan &plan) {
    if (settings_.export_bucket.empty())
        return fail(Errc::invalid_argument, "method export-task needs export_bucket in the aws config: the S3 bucket EC2 writes the image to");
    if (described.disks.size() != 1)
        return fail(Errc::unsupported,
                    fmt::format("unsupported: an EC2 export task writes one disk image and {} has {} volumes; use the default "
                                "method (ebs-direct), which exports every volume",
                                described.id, described.disks.size()));
    std::string fmt_name = settings_.export_format;
    std::transform(fmt_name.begin(), fmt_name.end(), fmt_name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (fmt_name != "VMDK" && fmt_name != "VHD" && fmt_name != "RAW")
        return fail(Errc::invalid_argument, fmt::format("export_format '{}': EC2 writes vmdk, vhd or raw", settings_.export_format));
    if (plan.phase) plan.phase("export task");
    Ec2 ec2(*client_);
    auto created = ec2.create_instance_export_task(described.id, settings_.export_bucket, settings_.export_prefix, fmt_name,
                                                   settings_.target_environment);
    if (!created) {
        Error e = created.error();
        e.message += "; EC2 refuses export tasks for instances launched from AWS Marketplace AMIs, instances whose volumes come "
                     "from snapshots of other accounts or encrypted with keys it cannot use, and instances with more than one "
                     "volume - the default method (ebs-direct) has none of these limits";
        return fail(std::move(e));
    }
    Ec2ExportTask task = created.value();
    auto cancel_task = [&](Error e) -> Result<std::unique_ptr<PreparedExport>> {
        ClientSettings s = client_->settings();
        s.cancel = CancelToken{};
        Client cleanup(client_->config(), s);
        Ec2 c(cleanup);
        if (auto r = c.cancel_export_task(task.id); !r) e.message += fmt::format("; export task {} could not be cancelled ({})", task.id, r.error().message);
        return fail(std::move(e));
    };
    const auto deadline = std::chrono::steady_clock::now() + settings_.snapshot_timeout;
    for (;;) {
        auto st = ec2.describe_export_task(task.id);
        if (!st) return cancel_task(st.error());
        task = st.value();
        if (task.state == "completed") break;
        if (task.state == "cancelled" || task.state == "cancelling" || task.state == "failed")
            return fail(Errc::remote_error, fmt::format("EC2 export task {} of {} ended {}: {}", task.id, described.id, task.state,
                                                        task.status_message.empty() ? "no reason given" : task.status_message));
        if (std::chrono::steady_clock::now() >= deadline)
            return cancel_task(Error{Errc::timeout, fmt::format("EC2 export task {} still {} after {} s", task.id, task.state,
                                                                settings_.snapshot_timeout.count())});
        if (plan.phase) plan.phase(fmt::format("export task {}: {}", task.id, task.status_message.empty() ? task.state : task.status_message));
        const auto until = std::chrono::steady_clock::now() + settings_.poll_interval;
        while (std::chrono::steady_clock::now() < until) {
            if (auto c = plan.cancel.check(); !c) return cancel_task(c.error());
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    if (task.key.empty())
        task.key = fmt::format("{}{}.{}", settings_.export_prefix, task.id, settings_.export_format == "raw" ? "raw" : settings_.export_format);
    if (task.bucket.empty()) task.bucket = settings_.export_bucket;
    HttpSourceOptions http = settings_.http;
    http.cancel = plan.cancel;
    HSDK_TRY(auto object, open_s3_object(client_, task.bucket, task.key, http));
    ExportDisk d;
    d.blocks = std::move(object);
    d.requests_in_flight = 32;  // S3 serves thousands of GETs per second per prefix
    std::string lower = settings_.export_format;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    d.format = lower == "vhd" ? "vpc" : lower;
    d.label = fmt::format("s3://{}/{}", task.bucket, task.key);
    d.identity = nlohmann::json{{"export_task", task.id}, {"object", d.label}};
    std::vector<ExportDisk> disks;
    disks.push_back(std::move(d));
    return std::unique_ptr<PreparedExport>(new TaskExport(*this, described, std::move(disks), std::move(task)));
}

Result<std::unique_ptr<PreparedBackup>> AwsSession::prepare_backup(const std::string &, const VirtualMachine &described,
                                                                   const BackupPlan &plan) {
    if (described.disks.empty()) return fail(Errc::invalid_argument, fmt::format("{} has no EBS volumes to back up", described.id));
    HSDK_TRY(auto snapshots, snapshot_instance(described, "backup", "", plan.cancel, plan.phase));
    std::vector<std::string> created, previous;
    for (const auto &s : snapshots) created.push_back(s.id);
    auto give_up = [&](Error e) -> Result<std::unique_ptr<PreparedBackup>> {
        for (const auto &n : delete_snapshots(created)) e.message += "; " + n;
        return fail(std::move(e));
    };
    if (plan.phase) plan.phase("changes");
    std::vector<BackupDisk> disks;
    for (std::size_t i = 0; i < snapshots.size(); ++i) {
        if (auto c = plan.cancel.check(); !c) return give_up(c.error());
        const auto &disk = described.disks[i];
        auto source = open_ebs_snapshot(client_, snapshots[i].id, settings_.blocks);
        if (!source) return give_up(source.error());
        BackupDisk b;
        b.disk_id = disk.id;
        b.change_id = snapshots[i].id;
        b.capacity = source.value()->size();
        b.source.blocks = source.value();
        b.source.format = "raw";
        b.source.label = fmt::format("{} ({}, {})", disk.label, disk.id, snapshots[i].id);
        b.source.identity = nlohmann::json{{"volume", disk.id}, {"snapshot", snapshots[i].id}};
        const auto prev = plan.previous_change_ids.find(disk.id);
        bool incremental = false;
        if (prev != plan.previous_change_ids.end() && !prev->second.empty()) {
            Ebs ebs(*client_);
            auto changed = ebs.list_changed_blocks(prev->second, snapshots[i].id);
            if (changed) {
                for (const auto &c : changed.value().blocks) {
                    const std::uint64_t o = c.index * changed.value().block_size;
                    if (o < b.capacity) b.changed.add(o, std::min<std::uint64_t>(changed.value().block_size, b.capacity - o));
                }
                incremental = true;
                previous.push_back(prev->second);
            } else if (changed.error().code == Errc::not_found || changed.error().code == Errc::invalid_argument) {
                b.notice = fmt::format("the previous snapshot {} cannot be compared ({}): copied in full", prev->second,
                                       changed.error().message);
                previous.push_back(prev->second);
            } else {
                return give_up(changed.error());
            }
        }
        if (!incremental) {
            auto runs = source.value()->allocation(0, b.capacity);
            if (!runs) return give_up(runs.error());
            b.changed = extents_of(runs.value());
            b.full = true;
        }
        disks.push_back(std::move(b));
    }
    // Snapshots of ours from before: deleted once this point is safe (those of other tools stay).
    std::vector<std::string> ours;
    if (!previous.empty()) {
        Ec2 ec2(*client_);
        if (auto found = ec2.describe_snapshots({}, {instance_tag, described.id}))
            for (const auto &s : found.value())
                if (std::find(previous.begin(), previous.end(), s.id) != previous.end()) ours.push_back(s.id);
    }
    return std::unique_ptr<PreparedBackup>(new SnapshotBackup(*this, described, std::move(disks), std::move(created), std::move(ours)));
}

}  // namespace hypersdk::aws
