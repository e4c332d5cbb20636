// run_warm_migration: the initial copy and precopy rounds into targets updated in place, then the
// cutover. The state document (warm-migration.json in the output folder) is written before and
// after every change that matters, so each step can be repeated or resumed:
//   - a round records its snapshot, change ids and plan before reading, then (every second) the
//     ranges whose bytes are on disk (targets synced first); a killed round is resumed by the next
//     one from the killed round's change ids, with what it had not yet copied added to the plan;
//   - the snapshot of a killed round is removed by the next round (leftovers are cleared before a
//     snapshot is taken), and a failed round removes its own;
//   - the cutover records that it began before it stops the VM, so it runs on to the end when
//     repeated.
#include "convert/prefetch.hpp"
#include "export/backup_state.hpp"
#include "export/connect.hpp"
#include "export/package.hpp"
#include "export/progress.hpp"
#include "export/warm_target.hpp"
#include "io/atomic_output.hpp"

#include <hypersdk/log.hpp>
#include <hypersdk/migrate.hpp>
#include <hypersdk/provider.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <filesystem>
#include <mutex>
#include <thread>

namespace hypersdk {
namespace {

using json = nlohmann::json;
constexpr const char *warm_state_name = "warm-migration.json";
constexpr std::uint64_t warm_piece = 1u << 20;  // bytes per read and write
constexpr auto warm_checkpoint_every = std::chrono::seconds(1);

double unix_now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

json warm_runs_json(const ChangedExtents &e) {
    json out = json::array();
    for (const auto &r : e.runs()) out.push_back(json::array({r.offset, r.length}));
    return out;
}

ChangedExtents warm_runs_from(const json &j) {
    ChangedExtents out;
    if (!j.is_array()) return out;
    for (const auto &r : j)
        if (r.is_array() && r.size() == 2) out.add(r[0].get<std::uint64_t>(), r[1].get<std::uint64_t>());
    return out;
}

// What of `a` lies outside `b`.
ChangedExtents warm_subtract(const ChangedExtents &a, const ChangedExtents &b) {
    ChangedExtents out;
    const auto &cut = b.runs();
    std::size_t k = 0;
    for (const auto &r : a.runs()) {
        std::uint64_t pos = r.offset;
        while (k < cut.size() && cut[k].end() <= pos) ++k;
        for (std::size_t j = k; j < cut.size() && cut[j].offset < r.end(); ++j) {
            if (cut[j].offset > pos) out.add(pos, cut[j].offset - pos);
            pos = std::max(pos, cut[j].end());
        }
        if (pos < r.end()) out.add(pos, r.end() - pos);
    }
    return out;
}

WarmRound round_from(const json &j) {
    WarmRound r;
    r.round = j.value("round", 0u);
    r.kind = j.value("kind", "");
    r.snapshot = j.value("snapshot", "");
    r.started = j.value("started", "");
    r.seconds = j.value("seconds", 0.0);
    r.changed_bytes = j.value("changed_bytes", std::uint64_t{0});
    r.bytes_read = j.value("bytes_read", std::uint64_t{0});
    r.transfer_rate = j.value("transfer_rate", 0.0);
    r.dirty_rate = j.value("dirty_rate", 0.0);
    r.peak_requests_in_flight = j.value("peak_requests_in_flight", 0u);
    return r;
}

// One disk's copy in a round: what is to be read, and what has reached its target.
struct DiskCopy {
    std::size_t index = 0;
    ChangedExtents to_copy;  // the ranges this round reads and writes
    // A full copy over a target holding older data: everything outside `keep` becomes zeros.
    bool zero_rest = false;
    ChangedExtents keep;
    exporter::WarmTarget *target = nullptr;
    BackupDisk *source = nullptr;
    ChangedExtents written;  // guarded by the runner's mutex
    std::uint64_t bytes_read = 0;
    unsigned peak = 0;
    Result<void> outcome = success();
};

class WarmMigration {
public:
    explicit WarmMigration(WarmMigrationOptions &o) : o_(o) {}

    Result<WarmMigrationResult> run() {
        if (o_.output_dir.empty()) return fail(Errc::invalid_argument, "no output folder given");
        state_path_ = (std::filesystem::path(o_.output_dir) / warm_state_name).string();
        HSDK_TRYV(load());
        if (o_.step == "status") {
            if (state_.is_null()) return fail(Errc::not_found, fmt::format("no warm migration in {} (no {})", o_.output_dir, warm_state_name));
            return result();
        }
        if (o_.step != "run" && o_.step != "precopy" && o_.step != "cutover")
            return fail(Errc::invalid_argument, fmt::format("unknown step '{}': precopy, cutover or status", o_.step));
        if (o_.vm.empty()) return fail(Errc::invalid_argument, "no VM given");
        if (!exporter::WarmTarget::supported(o_.format))
            return fail(Errc::unsupported, fmt::format("unsupported: a warm migration writes qcow2 or raw targets (updated in place "
                                                       "between rounds), not {}",
                                                       o_.format));
        if (!state_.is_null() && state_.value("phase", "") == "done") {
            if (o_.step == "precopy")
                return fail(Errc::conflict, fmt::format("this migration is finished (its cutover is done): no more precopy rounds ({})", state_path_));
            return result();
        }
        auto body = steps();
        if (!body) {
            Error e = body.error();
            if (prepared_) {
                for (const auto &n : prepared_->abort(e.message)) e.message += "; " + n;
                prepared_.reset();
            }
            return fail(e);
        }
        return result();
    }

private:
    // Rounds need changed extents and the cutover needs to stop the VM: a provider without both
    // is refused before it makes anything (a snapshot left for a cutover that cannot happen).
    Result<void> check_provider() const {
        HSDK_TRY(auto provider, find_provider(o_.provider));
        const auto caps = provider->capabilities();
        for (auto [cap, what] : {std::pair{ProviderCapability::changed_extents, "changed-block queries"},
                                 std::pair{ProviderCapability::power, "stopping the VM for the cutover"}})
            if ((caps & static_cast<std::uint32_t>(cap)) == 0)
                return fail(Errc::unsupported, fmt::format("unsupported: provider '{}' has no {}, which a warm migration needs "
                                                           "(hsdk providers lists what each can do)",
                                                           o_.provider, what));
        return success();
    }

    Result<void> steps() {
        HSDK_TRYV(check_provider());
        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel, 0);
        tracker_->phase("connecting");
        HSDK_TRY(session_, exporter::connect_provider(o_.provider, o_.provider_config, o_.connection, o_.cancel));
        HSDK_TRY(described_, session_->describe(o_.vm));
        if (described_.disks.empty()) return fail(Errc::invalid_argument, fmt::format("VM '{}' has no disks to migrate", o_.vm));
        HSDK_TRYV(start_or_check_state());
        HSDK_TRYV(open_targets());
        const std::string phase = state_["phase"];
        if (o_.step == "precopy") {
            if (phase != "precopy")
                return fail(Errc::conflict, fmt::format("the cutover of this migration has begun: run --step cutover to finish it ({})", state_path_));
            return round(state_["rounds"].empty() ? "full" : "delta");
        }
        if (o_.step == "run" && phase == "precopy") {
            unsigned deltas = 0;
            for (;;) {
                const bool initial = state_["rounds"].empty();
                if (!initial && state_["pending"].is_null() && converged()) break;
                if (!initial && deltas >= o_.max_rounds) {
                    auto r = result();
                    return fail(Errc::conflict, fmt::format("precopy did not converge in {} rounds: the expected downtime is {:.1f} s, the "
                                                            "budget {} s (dirty rate {:.0f} B/s, transfer rate {:.0f} B/s); run the cutover "
                                                            "anyway with --step cutover, or allow a longer downtime",
                                                            o_.max_rounds, r.predicted_downtime_seconds, o_.downtime_budget.count(),
                                                            last_round().dirty_rate, transfer_rate()));
                }
                HSDK_TRYV(round(initial ? "full" : "delta"));
                if (!initial) ++deltas;
            }
        }
        return cutover();
    }

    // ---- state ---------------------------------------------------------------------------

    Result<void> load() {
        std::error_code ec;
        if (!std::filesystem::exists(state_path_, ec)) return success();
        HSDK_TRY(auto file, io::File::open_read(state_path_));
        HSDK_TRY(auto size, file.size());
        std::string text(static_cast<std::size_t>(size), '\0');
        HSDK_TRYV(file.read_exact(0, std::as_writable_bytes(std::span(text.data(), text.size()))));
        state_ = json::parse(text, nullptr, false);
        if (state_.is_discarded() || !state_.is_object() || state_.value("version", 0) != 1 || !state_.contains("disks"))
            return fail(Errc::invalid_argument, fmt::format("{} is not a warm migration state document", state_path_));
        return success();
    }

    Result<void> save() { return write_json_file(state_path_, state_); }

    Result<void> start_or_check_state() {
        if (!state_.is_null()) {
            const auto was = state_["vm"];
            auto differs = [](const std::string &a, const std::string &b) { return !a.empty() && !b.empty() && a != b; };
            if (differs(was.value("instance_uuid", ""), described_.instance_uuid) || differs(was.value("uuid", ""), described_.uuid) ||
                differs(was.value("id", ""), described_.id))
                return fail(Errc::conflict, fmt::format("{} belongs to the migration of VM '{}', not '{}': use another output folder",
                                                        state_path_, was.value("name", ""), described_.name));
            if (state_.value("format", "") != o_.format)
                return fail(Errc::conflict, fmt::format("this migration writes {} targets (not {}): {}", state_.value("format", ""), o_.format,
                                                        state_path_));
            if (state_["disks"].size() != described_.disks.size())
                return fail(Errc::conflict, fmt::format("VM '{}' now has {} disks, the migration began with {}: start over in a new folder",
                                                        described_.name, described_.disks.size(), state_["disks"].size()));
            return success();
        }
        std::error_code ec;
        std::filesystem::create_directories(o_.output_dir, ec);
        if (ec) return fail(io::errno_error(ec.value(), "cannot create the output folder", o_.output_dir));
        json disks = json::array();
        for (std::size_t i = 0; i < described_.disks.size(); ++i) {
            const auto &d = described_.disks[i];
            const std::string file = converted_disk_name(d, i, o_.format);
            if (std::filesystem::exists(std::filesystem::path(o_.output_dir) / file, ec))
                return fail(Errc::conflict, fmt::format("{}/{} exists and no warm migration is recorded there: not overwriting it", o_.output_dir, file));
            disks.push_back(json{{"disk_id", d.id}, {"label", d.label}, {"file", file}, {"capacity", d.capacity_bytes},
                                 {"change_id", ""}, {"created", false}});
        }
        const auto id = backup::identity_of(described_);
        state_ = json{{"version", 1},
                      {"vm", {{"provider", id.provider}, {"id", id.id}, {"uuid", id.uuid}, {"instance_uuid", id.instance_uuid},
                              {"name", id.name}, {"inventory_path", id.inventory_path}}},
                      {"provider", o_.provider},
                      {"format", o_.format},
                      {"downtime_budget_seconds", o_.downtime_budget.count()},
                      {"created", backup::utc_now_iso8601()},
                      {"phase", "precopy"},
                      {"disks", disks},
                      {"rounds", json::array()},
                      {"pending", nullptr},
                      {"cutover", nullptr}};
        return save();
    }

    // Targets are created once (the state names them first, so a killed creation is redone).
    Result<void> open_targets() {
        targets_.clear();
        for (auto &d : state_["disks"]) {
            const std::string path = (std::filesystem::path(o_.output_dir) / d["file"].get<std::string>()).string();
            const std::uint64_t capacity = d["capacity"];
            if (!d.value("created", false)) {
                ::unlink(path.c_str());  // a creation that was killed: the state says nothing was copied yet
                HSDK_TRY(auto t, exporter::WarmTarget::create(path, o_.format, capacity));
                targets_.push_back(std::move(t));
                d["created"] = true;
                HSDK_TRYV(save());
                continue;
            }
            auto t = exporter::WarmTarget::open(path, o_.format, capacity);
            if (!t) return fail(t.error().with_context("opening the migration's target (copied in earlier rounds)"));
            targets_.push_back(std::move(t).value());
        }
        return success();
    }

    // ---- rounds --------------------------------------------------------------------------

    [[nodiscard]] WarmRound last_round() const {
        return state_["rounds"].empty() ? WarmRound{} : round_from(state_["rounds"].back());
    }

    // Bytes per second over every round so far (weighted by what each moved).
    [[nodiscard]] double transfer_rate() const {
        double bytes = 0, seconds = 0;
        for (const auto &r : state_["rounds"]) {
            bytes += r.value("bytes_read", 0.0);
            seconds += r.value("seconds", 0.0);
        }
        return seconds > 0 ? bytes / seconds : 0;
    }

    // The expected final delta's copy time: changes at the last measured dirty rate since the
    // last round's snapshot (at least for as long as a round takes), at the measured transfer rate.
    [[nodiscard]] double predicted_downtime() const {
        const auto &rounds = state_["rounds"];
        const bool measured = std::any_of(rounds.begin(), rounds.end(), [](const json &r) { return r.value("kind", "") == "delta"; });
        if (!measured) return -1;
        const WarmRound last = last_round();
        const double rate = transfer_rate();
        if (rate <= 0) return -1;
        const double since = std::max(unix_now() - last_started_unix(), last.seconds);
        return last.dirty_rate * since / rate;
    }

    [[nodiscard]] double last_started_unix() const {
        const auto &rounds = state_["rounds"];
        return rounds.empty() ? 0 : backup::parse_iso8601(rounds.back().value("started", "")).value_or(0);
    }

    [[nodiscard]] bool converged() const {
        const double p = predicted_downtime();
        return p >= 0 && p <= static_cast<double>(o_.downtime_budget.count());
    }

    // kind: full (the initial copy), delta (a precopy round) or final (the cutover's).
    Result<void> round(const std::string &kind) {
        const unsigned number = static_cast<unsigned>(state_["rounds"].size());
        json &pending = state_["pending"];
        BackupPlan plan;
        plan.quiesce = o_.quiesce && kind != "final";
        plan.cancel = o_.cancel;
        plan.phase = [this](const std::string &p) { tracker_->phase(p); };
        std::map<std::string, ChangedExtents> carried, killed_plan;
        std::map<std::string, bool> killed_zeroing;
        for (const auto &d : state_["disks"]) {
            const std::string id = d["disk_id"];
            std::string since = d.value("change_id", "");
            if (!pending.is_null()) {
                // The killed round's change ids: what changed since its snapshot, plus what it had
                // not copied yet, brings the target up to date.
                since = pending["change_ids"].value(id, since);
                killed_plan[id] = warm_runs_from(pending["plan"][id]);
                carried[id] = warm_subtract(killed_plan[id], warm_runs_from(pending["done"][id]));
                killed_zeroing[id] = pending.contains("zero_rest") && pending["zero_rest"].value(id, false);
            }
            if (!since.empty()) plan.previous_change_ids[id] = since;
        }
        const bool resumed = !pending.is_null();
        const bool had_data = number > 0 || resumed;
        tracker_->phase(fmt::format("round {} ({})", number, kind));
        HSDK_TRY(prepared_, session_->prepare_backup(o_.vm, described_, plan));
        const double started = unix_now();
        const std::string started_text = backup::utc_now_iso8601();
        auto &disks = prepared_->disks();
        if (disks.size() != targets_.size())
            return fail(Errc::remote_error, fmt::format("the snapshot has {} disks, the migration {}", disks.size(), targets_.size()));

        std::vector<DiskCopy> copies(disks.size());
        json change_ids = json::object(), plans = json::object(), done = json::object(), zero_rest = json::object();
        std::uint64_t queried = 0, planned_bytes = 0;
        for (std::size_t i = 0; i < disks.size(); ++i) {
            auto &c = copies[i];
            const std::string id = state_["disks"][i]["disk_id"];
            if (disks[i].disk_id != id)
                return fail(Errc::remote_error, fmt::format("the snapshot's disk {} is '{}', the migration's '{}'", i + 1, disks[i].disk_id, id));
            c.index = i;
            c.source = &disks[i];
            c.target = &targets_[i];
            c.to_copy = disks[i].changed.united(carried[id]).clipped(0, targets_[i].capacity());
            // Zeroing the rest of a target may have been cut short: redone around both plans.
            c.zero_rest = (disks[i].full && had_data) || killed_zeroing[id];
            c.keep = killed_zeroing[id] ? c.to_copy.united(killed_plan[id]) : c.to_copy;
            zero_rest[id] = c.zero_rest;
            queried += disks[i].changed.bytes();
            planned_bytes += c.to_copy.bytes();
            change_ids[id] = disks[i].change_id;
            plans[id] = warm_runs_json(c.to_copy);
            done[id] = json::array();
        }
        pending = json{{"round", number}, {"kind", kind},       {"snapshot", prepared_->snapshot()}, {"started", started_text},
                       {"change_ids", change_ids}, {"plan", plans}, {"done", done}, {"zero_rest", zero_rest}};
        HSDK_TRYV(save());

        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel, static_cast<unsigned>(copies.size()));
        tracker_->phase(fmt::format("round {} ({})", number, kind));
        for (auto &c : copies) tracker_->disk_total(static_cast<unsigned>(c.index + 1), c.to_copy.bytes());
        std::vector<std::thread> workers;
        running_ = static_cast<unsigned>(copies.size());
        for (auto &c : copies) workers.emplace_back([this, &c] { c.outcome = copy_disk(c); });
        Result<void> checkpoints = success();
        for (;;) {
            bool finished = true;
            {
                std::unique_lock lock(mutex_);
                finished = progress_.wait_for(lock, warm_checkpoint_every, [&] { return running_ == 0; });
            }
            if (finished) break;
            if (checkpoints) checkpoints = checkpoint(copies);
        }
        for (auto &w : workers) w.join();
        running_ = 0;
        for (auto &c : copies) HSDK_TRYV(c.outcome);
        HSDK_TRYV(checkpoints);
        HSDK_TRYV(checkpoint(copies));
        HSDK_TRYV(o_.cancel.check());
        const double seconds = std::max(1e-6, unix_now() - started);

        tracker_->phase("cleanup");
        HSDK_TRYV(prepared_->complete());
        WarmRound r;
        r.round = number;
        r.kind = kind;
        r.snapshot = prepared_->snapshot();
        r.started = started_text;
        r.seconds = seconds;
        r.changed_bytes = planned_bytes;
        for (auto &c : copies) {
            r.bytes_read += c.bytes_read;
            r.peak_requests_in_flight = std::max(r.peak_requests_in_flight, c.peak);
        }
        r.transfer_rate = static_cast<double>(r.bytes_read) / seconds;
        const double previous = last_started_unix();
        const bool any_full = std::any_of(disks.begin(), disks.end(), [](const BackupDisk &d) { return d.full; });
        if (!any_full && previous > 0 && started > previous) r.dirty_rate = static_cast<double>(queried) / (started - previous);
        if (any_full && kind == "delta") r.kind = "full";  // tracking was reset: everything was copied again
        prepared_.reset();
        for (std::size_t i = 0; i < copies.size(); ++i) state_["disks"][i]["change_id"] = change_ids[state_["disks"][i]["disk_id"].get<std::string>()];
        state_["rounds"].push_back(to_json(r));
        pending = nullptr;
        HSDK_TRYV(save());
        log(LogLevel::info, fmt::format("warm migration of '{}': round {} ({}{}): {} bytes changed, {} read in {:.1f} s", described_.name,
                                        number, r.kind, resumed ? ", resumed" : "", r.changed_bytes, r.bytes_read, r.seconds));
        return success();
    }

    // Ranges written so far reach the disk, then the state says so.
    Result<void> checkpoint(std::vector<DiskCopy> &copies) {
        std::vector<ChangedExtents> written;
        {
            std::lock_guard lock(mutex_);
            for (const auto &c : copies) written.push_back(c.written);
        }
        for (auto &t : targets_) HSDK_TRYV(t.sync());
        json &done = state_["pending"]["done"];
        for (std::size_t i = 0; i < copies.size(); ++i) done[state_["disks"][i]["disk_id"].get<std::string>()] = warm_runs_json(written[i]);
        return save();
    }

    Result<void> copy_disk(DiskCopy &c) {
        auto r = copy_disk_body(c);
        std::lock_guard lock(mutex_);
        --running_;
        progress_.notify_all();
        return r;
    }

    Result<void> copy_disk_body(DiskCopy &c) {
        const auto index = static_cast<unsigned>(c.index + 1);
        if (!c.source->source.blocks)
            return fail(Errc::unsupported, fmt::format("unsupported: disk {} can only be read as a whole stream here; a warm migration "
                                                       "reads changed ranges at their offsets",
                                                       index));
        OpenOptions open;
        open.format = c.source->source.format;
        HSDK_TRY(auto image, open_image_source(c.source->source.blocks, open));
        if (image->virtual_size() != c.target->capacity())
            return fail(Errc::conflict, fmt::format("disk {} is now {} bytes, its target {}: a disk that changed size needs a new migration",
                                                    index, image->virtual_size(), c.target->capacity()));
        if (c.zero_rest) {
            ChangedExtents all;
            all.add(0, c.target->capacity());
            const ChangedExtents rest = warm_subtract(all, c.keep);
            for (const auto &r : rest.runs()) HSDK_TRYV(c.target->zero(r.offset, r.length));
        }
        tracker_->disk_started(index);
        pipeline::PrefetchingDevice source(*image, c.to_copy, std::max(1u, o_.requests_in_flight), warm_piece);
        std::vector<std::byte> buf(warm_piece);
        for (const auto &run : c.to_copy.runs()) {
            for (std::uint64_t at = run.offset; at < run.end();) {
                HSDK_TRYV(o_.cancel.check());
                const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(run.end() - at, warm_piece));
                std::span<std::byte> piece(buf.data(), n);
                HSDK_TRYV(source.read(at, piece));
                HSDK_TRYV(c.target->write(at, piece));
                {
                    std::lock_guard lock(mutex_);
                    c.written.add(at, n);
                    c.bytes_read += n;
                }
                tracker_->disk_bytes(index, n);
                at += n;
            }
        }
        c.peak = source.peak_in_flight();
        return success();
    }

    // ---- cutover -------------------------------------------------------------------------

    Result<void> cutover() {
        json &cut = state_["cutover"];
        if (state_["phase"] == "precopy") {
            const double predicted = predicted_downtime();
            cut = json{{"began", backup::utc_now_iso8601()}, {"began_unix", unix_now()}, {"predicted_downtime_seconds", predicted},
                       {"stopped", ""}, {"measured_downtime_seconds", nullptr}, {"files", json::array()}};
            state_["phase"] = "cutover";
            HSDK_TRYV(save());
        }
        tracker_->phase("stopping");
        StopOptions stop;
        stop.guest_timeout = o_.shutdown_timeout;
        stop.force = o_.force_power_off;
        stop.cancel = o_.cancel;
        HSDK_TRY(auto stopped, session_->stop_vm(o_.vm, stop));
        if (cut.value("stopped", "").empty()) {
            cut["stopped"] = stopped.how;
            HSDK_TRYV(save());
        }
        const auto &rounds = state_["rounds"];
        const bool final_done = !rounds.empty() && rounds.back().value("kind", "") == "final" && state_["pending"].is_null();
        if (!final_done) HSDK_TRYV(round("final"));

        tracker_->phase("hand-off");
        HSDK_TRY(auto files, write_hand_off());
        cut["files"] = files;
        cut["measured_downtime_seconds"] = unix_now() - cut.value("began_unix", unix_now());
        state_["phase"] = "done";
        state_["finished"] = backup::utc_now_iso8601();
        HSDK_TRYV(save());
        return success();
    }

    // The VM description, the libvirt domain and hyper2kvm's manifest, beside the disks.
    Result<std::vector<std::string>> write_hand_off() {
        const std::string stem = exporter::file_stem(described_.name.empty() ? o_.vm : described_.name);
        VirtualMachine vm = described_;
        std::vector<std::string> files;
        for (std::size_t i = 0; i < vm.disks.size(); ++i) {
            const std::string name = state_["disks"][i]["file"];
            vm.disks[i].file = name;
            vm.disks[i].file_format = o_.format;
            files.push_back(disk_path(o_.output_dir, name));
        }
        KvmOptions kvm = o_.kvm;
        kvm.disk_dir = o_.output_dir;
        kvm.disk_format = o_.format;
        HSDK_TRYV(check_kvm_options(described_, kvm));
        const std::string description = disk_path(o_.output_dir, stem + ".json");
        HSDK_TRYV(write_json_file(description, to_json(vm)));
        files.push_back(description);
        HSDK_TRY(auto xml, libvirt_domain_xml(described_, kvm));
        const std::string domain = disk_path(o_.output_dir, stem + ".xml");
        {
            io::AtomicOutputSet out;
            HSDK_TRY(auto *file, out.add(domain));
            HSDK_TRYV(file->write_all(0, std::as_bytes(std::span(xml.data(), xml.size()))));
            HSDK_TRYV(out.commit());
        }
        files.push_back(domain);
        HSDK_TRY(auto manifest, hyper2kvm_manifest(described_, kvm, o_.cancel));
        const std::string manifest_path = disk_path(o_.output_dir, stem + ".hyper2kvm.json");
        HSDK_TRYV(write_json_file(manifest_path, manifest));
        files.push_back(manifest_path);
        return files;
    }

    // ---- result --------------------------------------------------------------------------

    WarmMigrationResult result() const {
        WarmMigrationResult r;
        r.phase = state_.value("phase", "");
        r.state_file = state_path_;
        if (!described_.name.empty()) r.vm = described_;
        else {
            const auto &v = state_["vm"];
            r.vm.provider = v.value("provider", "");
            r.vm.id = v.value("id", "");
            r.vm.uuid = v.value("uuid", "");
            r.vm.instance_uuid = v.value("instance_uuid", "");
            r.vm.name = v.value("name", "");
            r.vm.inventory_path = v.value("inventory_path", "");
        }
        for (const auto &d : state_["disks"])
            r.disks.push_back(WarmDisk{d.value("disk_id", ""), d.value("label", ""),
                                       disk_path(o_.output_dir, d.value("file", "")), d.value("capacity", std::uint64_t{0}),
                                       d.value("change_id", "")});
        for (const auto &j : state_["rounds"]) r.rounds.push_back(round_from(j));
        const json &cut = state_["cutover"];
        if (cut.is_object()) {
            r.predicted_downtime_seconds = cut.value("predicted_downtime_seconds", -1.0);
            r.stopped = cut.value("stopped", "");
            if (cut["measured_downtime_seconds"].is_number()) r.measured_downtime_seconds = cut["measured_downtime_seconds"].get<double>();
            for (const auto &f : cut["files"]) r.files.push_back(f.get<std::string>());
            r.converged = r.predicted_downtime_seconds >= 0 &&
                          r.predicted_downtime_seconds <= state_.value("downtime_budget_seconds", 60.0);
        } else {
            r.predicted_downtime_seconds = predicted_downtime();
            r.converged = r.predicted_downtime_seconds >= 0 &&
                          r.predicted_downtime_seconds <= state_.value("downtime_budget_seconds", 60.0);
            r.next_round_in_seconds = next_round_in();
        }
        return r;
    }

    // When the changes since the last snapshot will have grown to what the budget can copy: a
    // round then keeps the cutover within the budget. Capped by the interval.
    [[nodiscard]] double next_round_in() const {
        const WarmRound last = last_round();
        const double budget = state_.value("downtime_budget_seconds", 60.0);
        double wait = budget;
        if (last.dirty_rate > 0 && transfer_rate() > 0)
            wait = std::max(0.0, budget * transfer_rate() / last.dirty_rate - (unix_now() - last_started_unix()));
        else if (state_["rounds"].size() < 2)
            wait = 0;  // the rates are not measured yet: the next round measures them
        if (o_.interval.count() > 0) wait = std::min(wait, static_cast<double>(o_.interval.count()));
        return wait;
    }

    WarmMigrationOptions &o_;
    std::string state_path_;
    json state_;
    std::unique_ptr<ProviderSession> session_;
    VirtualMachine described_;
    std::vector<exporter::WarmTarget> targets_;
    std::unique_ptr<PreparedBackup> prepared_;
    std::unique_ptr<exporter::ExportProgressTracker> tracker_;
    std::mutex mutex_;
    std::condition_variable progress_;
    unsigned running_ = 0;
};

}  // namespace

nlohmann::json to_json(const WarmRound &r) {
    return nlohmann::json{{"round", r.round},
                          {"kind", r.kind},
                          {"snapshot", r.snapshot},
                          {"started", r.started},
                          {"seconds", r.seconds},
                          {"changed_bytes", r.changed_bytes},
                          {"bytes_read", r.bytes_read},
                          {"transfer_rate", r.transfer_rate},
                          {"dirty_rate", r.dirty_rate},
                          {"peak_requests_in_flight", r.peak_requests_in_flight}};
}

Result<WarmMigrationResult> run_warm_migration(WarmMigrationOptions options) {
    options.connection.cancel = options.cancel;
    WarmMigration runner(options);
    return runner.run();
}

}  // namespace hypersdk
