#include "service/jobs.hpp"

#include "service/backoff.hpp"
#include "service/handoff.hpp"
#include "service/time_window.hpp"

#include <hypersdk/ops.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>

namespace hypersdk::service {
namespace {

// Parses what rfc3339() writes; a time that does not parse reads as the epoch.
TimePoint parse_time(const std::string &text) {
    std::tm tm{};
    if (text.size() < 19 || !strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return TimePoint{};
    return Clock::from_time_t(timegm(&tm));
}

bool retryable(const std::string &code) {
    // A request that is wrong stays wrong; a missing VM or denied access does not come back by
    // waiting; everything else (network, timeouts, remote errors, no space) may.
    return code != "invalid_argument" && code != "cancelled" && code != "not_found" && code != "permission_denied" &&
           code != "auth_failed" && code != "unsupported" && code != "conflict";
}

constexpr auto progress_event_interval = std::chrono::seconds(1);

}  // namespace

nlohmann::json JobRecord::to_doc() const {
    return {{"seq", seq},           {"kind", kind},         {"name", name},
            {"operation", operation}, {"vm_path", vm_path}, {"host", host},
            {"status", status},     {"definition", definition}, {"progress", progress},
            {"result", result},     {"error", error},       {"error_code", error_code},
            {"created", created},   {"updated", updated},   {"started", started},
            {"completed", completed}, {"priority", priority}, {"depends_on", depends_on},
            {"max_retries", max_retries}, {"attempts", attempts}, {"not_before", not_before},
            {"time_window", time_window}, {"schedule_id", schedule_id}, {"handoff", handoff},
            {"seconds", seconds}};
}

JobRecord JobRecord::from_doc(const std::string &id, const nlohmann::json &d) {
    JobRecord r;
    r.id = id;
    r.seq = d.value("seq", std::uint64_t{0});
    r.kind = d.value("kind", "export");
    r.name = d.value("name", "");
    r.operation = d.value("operation", "");
    r.vm_path = d.value("vm_path", "");
    r.host = d.value("host", "");
    r.status = d.value("status", "failed");
    r.definition = d.value("definition", nlohmann::json::object());
    r.progress = d.value("progress", nlohmann::json::object());
    r.result = d.contains("result") ? d["result"] : nlohmann::json();
    r.error = d.value("error", "");
    r.error_code = d.value("error_code", "");
    r.created = d.value("created", "");
    r.updated = d.value("updated", "");
    r.started = d.value("started", "");
    r.completed = d.value("completed", "");
    r.priority = d.value("priority", 0);
    r.depends_on = d.value("depends_on", std::vector<std::string>{});
    r.max_retries = d.value("max_retries", 0u);
    r.attempts = d.value("attempts", 0u);
    r.not_before = d.value("not_before", "");
    r.time_window = d.value("time_window", "");
    r.schedule_id = d.value("schedule_id", "");
    r.handoff = d.contains("handoff") ? d["handoff"] : nlohmann::json();
    r.seconds = d.value("seconds", 0.0);
    return r;
}

JobBoard::JobBoard(Store &store, SecretBox &box, const Config &config, JobBoardSettings settings, JobListener listener)
    : store_(store), box_(box), config_(config), settings_(std::move(settings)), listener_(std::move(listener)) {}

JobBoard::~JobBoard() { shutdown(); }

Result<void> JobBoard::load() {
    HSDK_TRY(auto rows, store_.load("jobs"));
    std::lock_guard lock(mutex_);
    for (auto &row : rows) {
        auto job = JobRecord::from_doc(row.id, row.doc);
        if (job.status == "running") {
            // The process that ran it is gone: its library job (and any cleanup it would do on
            // cancel) went with it. Say so instead of pretending it still runs.
            job.status = "failed";
            job.error = "interrupted by restart";
            job.error_code = "cancelled";
            job.completed = job.updated = rfc3339(Clock::now());
            HSDK_TRYV(store_.put("jobs", {job.id, job.to_doc(), row.sealed}));
        }
        if (job.status == "pending") sealed_[job.id] = row.sealed;
        next_seq_ = std::max(next_seq_, job.seq + 1);
        jobs_[job.id] = std::move(job);
    }
    return success();
}

void JobBoard::start() {
    std::lock_guard lock(mutex_);
    if (dispatcher_.joinable()) return;
    dispatcher_ = std::thread([this] { dispatch_loop(); });
}

void JobBoard::shutdown() {
    std::vector<std::shared_ptr<Job>> running;
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !dispatcher_.joinable()) return;
        stopping_ = true;
        for (auto &[id, job] : live_) running.push_back(job);
    }
    changed_.notify_all();
    if (dispatcher_.joinable()) dispatcher_.join();
    for (auto &job : running) job->cancel();
    for (auto &job : running) job->wait();
}

void JobBoard::reload(const Config &config, JobBoardSettings settings) {
    {
        std::lock_guard lock(mutex_);
        config_ = config;
        settings_ = std::move(settings);
    }
    changed_.notify_all();
}

void JobBoard::wake() { changed_.notify_all(); }

void JobBoard::persist(const JobRecord &job, const std::string &sealed) {
    // A failed write is logged, not fatal for the job: the daemon keeps running it and the record
    // in memory stays right; the next successful write catches the database up.
    auto stored = store_.put("jobs", {job.id, job.to_doc(), sealed});
    if (!stored) log(LogLevel::error, fmt::format("job {}: cannot save: {}", job.id, stored.error().message));
}

nlohmann::json JobBoard::shown(const JobRecord &j) const {
    auto progress = compat_progress(j.progress, j.status);
    nlohmann::json s = {{"id", j.id},
                        {"job_id", j.id},
                        {"name", j.name},
                        {"status", j.status},
                        {"operation", j.operation},
                        {"kind", j.kind},
                        {"vm_path", j.vm_path},
                        {"definition", j.definition},
                        {"progress", progress},
                        {"created_at", j.created},
                        {"updated_at", j.updated.empty() ? j.created : j.updated},
                        {"priority", j.priority},
                        {"depends_on", j.depends_on},
                        {"retries", j.attempts > 0 ? j.attempts - 1 : 0},
                        {"max_retries", j.max_retries}};
    if (!j.started.empty()) s["started_at"] = j.started;
    if (!j.completed.empty()) s["completed_at"] = j.completed;
    if (!j.result.is_null()) s["result"] = j.result;
    if (!j.error.empty()) {
        s["error"] = j.error;
        s["error_code"] = j.error_code;
    }
    if (!j.schedule_id.empty()) s["schedule_id"] = j.schedule_id;
    if (!j.time_window.empty()) s["time_window"] = j.time_window;
    if (!j.not_before.empty() && j.status == "pending") s["not_before"] = j.not_before;
    return s;
}

void JobBoard::notify(const std::string &event, const JobRecord &job) {
    // The job's events are part of its log (GET /jobs/logs shows them beside the library's lines).
    if (event != "job.progress") {
        std::string line = event;
        if (event == "job.started") line += fmt::format(" (attempt {} of {})", job.attempts, job.max_retries + 1);
        if (!job.error.empty() && (event == "job.failed" || event == "job.cancelled")) line += ": " + job.error;
        auto stored = store_.append_log(job.id, {rfc3339(Clock::now()), event == "job.failed" ? "error" : "info", line});
        (void)stored;  // as on_log: a lost log line does not fail the job
    }
    if (listener_) listener_(event, job, shown(job));
}

Result<JobRecord> JobBoard::submit(JobSubmission sub) {
    if (!sub.time_window.empty()) HSDK_TRYV(parse_time_window(sub.time_window));
    JobRecord job;
    job.id = sub.requested_id.empty() ? new_uuid() : sub.requested_id;
    job.kind = sub.kind;
    job.name = sub.plan.name;
    job.operation = sub.plan.operation;
    job.vm_path = sub.plan.vm_path;
    job.host = sub.plan.host;
    job.definition = std::move(sub.definition_shown);
    job.created = job.updated = rfc3339(Clock::now());
    job.priority = sub.priority;
    job.depends_on = std::move(sub.depends_on);
    job.max_retries = sub.max_retries;
    job.time_window = sub.time_window;
    job.schedule_id = sub.schedule_id;
    job.handoff = redact_secrets(sub.plan.handoff);
    HSDK_TRY(auto sealed, box_.seal({{"request", sub.plan.request}}));
    {
        std::lock_guard lock(mutex_);
        if (jobs_.count(job.id)) return fail(Errc::conflict, "invalid request: a job with id " + job.id + " exists already");
        job.definition["id"] = job.id;
        for (const auto &dep : job.depends_on)
            if (!jobs_.count(dep)) return fail(Errc::invalid_argument, "invalid request: depends_on names an unknown job " + dep);
        job.seq = next_seq_++;
        // Written before the answer: a submit the client saw accepted survives a crash.
        auto stored = store_.put("jobs", {job.id, job.to_doc(), sealed});
        if (!stored) return fail(stored.error());
        sealed_[job.id] = sealed;
        jobs_[job.id] = job;
    }
    log(LogLevel::info, fmt::format("job submitted: {} ({} {}, vm {})", job.id, job.operation, job.name, job.vm_path));
    notify("job.created", job);
    changed_.notify_all();
    return job;
}

std::optional<JobRecord> JobBoard::get(const std::string &id) const {
    std::lock_guard lock(mutex_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end()) return std::nullopt;
    return it->second;
}

std::vector<JobRecord> JobBoard::list() const {
    std::vector<JobRecord> out;
    {
        std::lock_guard lock(mutex_);
        out.reserve(jobs_.size());
        for (const auto &[id, j] : jobs_) out.push_back(j);
    }
    std::sort(out.begin(), out.end(), [](const JobRecord &a, const JobRecord &b) { return a.seq > b.seq; });
    return out;
}

JobBoard::Counts JobBoard::counts() const {
    Counts c;
    std::lock_guard lock(mutex_);
    for (const auto &[id, j] : jobs_) {
        ++c.total;
        if (j.status == "pending") ++c.pending;
        else if (j.status == "running") ++c.running;
        else if (j.status == "completed") ++c.completed;
        else if (j.status == "failed") ++c.failed;
        else if (j.status == "cancelled") ++c.cancelled;
    }
    return c;
}

std::vector<StoredLog> JobBoard::logs(const std::string &id, std::size_t limit) const {
    auto rows = store_.logs(id, limit);
    return rows ? std::move(rows).value() : std::vector<StoredLog>{};
}

Result<void> JobBoard::cancel(const std::string &id, std::chrono::milliseconds wait_for) {
    std::shared_ptr<Job> running;
    {
        std::unique_lock lock(mutex_);
        const auto it = jobs_.find(id);
        if (it == jobs_.end()) return fail(Errc::not_found, "job not found: " + id);
        auto &job = it->second;
        if (job.status == "pending") {
            job.status = "cancelled";
            job.error = "cancelled before it started";
            job.error_code = "cancelled";
            job.completed = job.updated = rfc3339(Clock::now());
            sealed_.erase(id);
            persist(job);
            const JobRecord copy = job;
            lock.unlock();
            log(LogLevel::info, fmt::format("job cancelled: {}", id));
            notify("job.cancelled", copy);
            changed_.notify_all();
            return success();
        }
        if (job.status != "running") return fail(Errc::conflict, fmt::format("job {} is already {}", id, job.status));
        const auto lit = live_.find(id);
        if (lit != live_.end()) running = lit->second;
    }
    if (running) {
        // The library job stops at its next unit of work and removes what it wrote; the answer
        // waits for that so "cancelled" means stopped, not "asked to stop".
        running->cancel();
        if (!running->wait_for(wait_for)) return fail(Errc::timeout, fmt::format("job {} was asked to stop and is still stopping", id));
    }
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(5), [&] { return jobs_[id].status != "running"; });
    if (jobs_[id].status == "cancelled") return success();
    return fail(Errc::conflict, fmt::format("job {} finished as {} before it could be cancelled", id, jobs_[id].status));
}

bool JobBoard::wait(const std::string &id, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
        const auto it = jobs_.find(id);
        return it == jobs_.end() || (it->second.status != "pending" && it->second.status != "running");
    });
}

bool JobBoard::eligible(const JobRecord &job, TimePoint now, std::map<std::string, unsigned> &per_host, std::string &fail_reason) const {
    if (!job.not_before.empty() && parse_time(job.not_before) > now) return false;
    for (const auto &dep : job.depends_on) {
        const auto it = jobs_.find(dep);
        if (it == jobs_.end()) continue;
        const auto &s = it->second.status;
        if (s == "failed" || s == "cancelled") {
            fail_reason = fmt::format("dependency {} {}", dep, s);
            return false;
        }
        if (s != "completed") return false;
    }
    if (!job.time_window.empty()) {
        auto window = parse_time_window(job.time_window);
        if (window && !inside(window.value(), now, false)) return false;
    }
    if (settings_.per_host_limit && !job.host.empty() && per_host[job.host] >= settings_.per_host_limit) return false;
    return true;
}

void JobBoard::dispatch_loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const auto now = Clock::now();
        std::map<std::string, unsigned> per_host;
        unsigned running = 0;
        for (const auto &[id, j] : jobs_)
            if (j.status == "running") {
                ++running;
                ++per_host[j.host];
            }
        std::vector<JobRecord *> pending;
        for (auto &[id, j] : jobs_)
            if (j.status == "pending") pending.push_back(&j);
        std::sort(pending.begin(), pending.end(), [](const JobRecord *a, const JobRecord *b) {
            return a->priority != b->priority ? a->priority > b->priority : a->seq < b->seq;
        });
        std::vector<std::pair<std::string, std::string>> to_fail;
        for (auto *j : pending) {
            if (running >= std::max(1u, settings_.workers)) break;
            std::string reason;
            if (!eligible(*j, now, per_host, reason)) {
                if (!reason.empty()) to_fail.emplace_back(j->id, reason);
                continue;
            }
            launch(*j);
            if (j->status == "running") {
                ++running;
                ++per_host[j->host];
            }
        }
        for (const auto &[id, reason] : to_fail) {
            auto &j = jobs_[id];
            j.status = "failed";
            j.error = reason;
            j.error_code = "conflict";
            j.completed = j.updated = rfc3339(now);
            sealed_.erase(id);
            persist(j);
            const JobRecord copy = j;
            lock.unlock();
            log(LogLevel::warn, fmt::format("job failed: {}: {}", id, reason));
            notify("job.failed", copy);
            lock.lock();
        }
        // Retries, time windows and schedules need a look even when nothing changes.
        changed_.wait_for(lock, std::chrono::milliseconds(500));
    }
}

// Under mutex_.
void JobBoard::launch(JobRecord &job) {
    const auto sealed_it = sealed_.find(job.id);
    nlohmann::json secret;
    if (sealed_it != sealed_.end()) {
        auto opened = box_.unseal(sealed_it->second);
        if (opened) secret = std::move(opened).value();
    }
    if (!secret.is_object() || !secret.contains("request")) {
        job.status = "failed";
        job.error = "the job's request cannot be read back (credential key file changed?)";
        job.error_code = "internal";
        job.completed = job.updated = rfc3339(Clock::now());
        persist(job);
        return;
    }
    const std::string id = job.id;
    JobCallbacks cb;
    cb.progress = [this, id](const ProgressInfo &p) {
        on_progress(id, p);
        return ProgressAction::proceed;
    };
    cb.finished = [this, id](const Job &j) { on_finished(id, j); };
    // The board's id is the job's: the library job's own id would change with every retry.
    cb.log = [this, id](LogLevel level, std::string_view, std::string_view message) { on_log(id, level, message); };
    auto started = start_job(job.operation, secret["request"], std::move(cb));
    job.attempts += 1;
    job.started = job.updated = rfc3339(Clock::now());
    job.not_before.clear();
    if (!started) {
        job.status = "failed";
        job.error = started.error().message;
        job.error_code = std::string(errc_name(started.error().code));
        job.completed = job.started;
        persist(job);
        const JobRecord copy = job;
        log(LogLevel::error, fmt::format("job failed: {}: {}", job.id, job.error));
        // notify outside the lock would be cleaner; the listener only queues work.
        notify("job.failed", copy);
        return;
    }
    job.status = "running";
    job.error.clear();
    job.error_code.clear();
    live_[id] = started.value();
    persist(job, sealed_it->second);
    log(LogLevel::info, fmt::format("job started: {} ({})", id, job.operation));
    notify("job.started", job);
}

void JobBoard::on_progress(const std::string &id, const ProgressInfo &p) {
    JobRecord copy;
    bool send = false;
    {
        std::lock_guard lock(mutex_);
        const auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        it->second.progress = to_json(p);
        const auto now = std::chrono::steady_clock::now();
        auto &last = last_progress_event_[id];
        if (now - last >= progress_event_interval) {
            last = now;
            send = true;
            copy = it->second;
        }
    }
    if (send) notify("job.progress", copy);
}

void JobBoard::on_log(const std::string &id, LogLevel level, std::string_view message) {
    auto stored = store_.append_log(id, {rfc3339(Clock::now()), std::string(log_level_name(level)), std::string(message)});
    (void)stored;  // a log line that cannot be stored is not worth failing the export for
}

void JobBoard::on_finished(const std::string &id, const Job &lib) {
    JobRecord copy;
    std::string event;
    bool handoff_needed = false;
    nlohmann::json op_result;
    {
        std::lock_guard lock(mutex_);
        auto &job = jobs_[id];
        live_.erase(id);
        last_progress_event_.erase(id);
        const auto now = Clock::now();
        job.seconds = std::chrono::duration<double>(now - parse_time(job.started)).count();
        job.progress = to_json(lib.progress());
        auto result = lib.result();
        if (result) {
            op_result = result.value();
            job.status = "completed";
            job.result = job.kind == "export" ? compat_export_result(op_result, job.definition, job.seconds) : op_result;
            if (job.kind == "export") job.result["operation_result"] = op_result;
            handoff_needed = job.kind == "export" && !job.handoff.is_null();
        } else {
            job.error = result.error().message;
            job.error_code = std::string(errc_name(result.error().code));
            if (stopping_) {
                job.status = "failed";
                job.error = "interrupted by restart";
            } else if (result.error().code == Errc::cancelled) {
                job.status = "cancelled";
            } else if (job.attempts <= job.max_retries && retryable(job.error_code)) {
                const auto delay = retry_delay(job.attempts, settings_.retry_base, settings_.retry_cap, 0.5, std::hash<std::string>{}(id) + job.attempts);
                job.status = "pending";
                // rfc3339 keeps whole seconds: round up so the retry never comes early.
                job.not_before = rfc3339(now + delay + std::chrono::seconds(1));
                job.updated = rfc3339(now);
                persist(job, sealed_[id]);
                auto logged = store_.append_log(id, {rfc3339(now), "warn",
                                                     fmt::format("attempt {} failed: {}; retrying after {} (attempt {} of {})", job.attempts, job.error,
                                                                 go_duration(std::chrono::duration<double>(delay).count()), job.attempts + 1, job.max_retries + 1)});
                (void)logged;
                changed_.notify_all();
                return;
            } else {
                job.status = "failed";
            }
        }
        job.completed = job.updated = rfc3339(now);
        if (!handoff_needed) sealed_.erase(id);
        persist(job);
        copy = job;
    }
    if (handoff_needed) {
        auto placed = hyper2kvm_handoff(copy, op_result, settings_.hyper2kvm);
        std::lock_guard lock(mutex_);
        auto &job = jobs_[id];
        if (placed) {
            job.result["hyper2kvm"] = placed.value();
        } else {
            job.status = "failed";
            job.error = "hyper2kvm hand-off: " + placed.error().message;
            job.error_code = std::string(errc_name(placed.error().code));
        }
        sealed_.erase(id);
        persist(job);
        copy = job;
    }
    event = copy.status == "completed" ? "job.completed" : copy.status == "cancelled" ? "job.cancelled" : "job.failed";
    if (copy.status == "completed")
        log(LogLevel::info, fmt::format("job completed: {} ({:.1f} s)", id, copy.seconds));
    else if (copy.status == "cancelled")
        log(LogLevel::info, fmt::format("job cancelled: {}", id));
    else
        log(LogLevel::error, fmt::format("job failed: {}: {}", id, copy.error));
    notify(event, copy);
    changed_.notify_all();
}

}  // namespace hypersdk::service
