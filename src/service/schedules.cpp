#include "service/schedules.hpp"

#include "service/time_window.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

namespace hypersdk::service {
namespace {

std::string schedule_text(const nlohmann::json &body) {
    for (const char *k : {"schedule", "cron"})
        if (body.contains(k) && body[k].is_string()) return body[k].get<std::string>();
    return {};
}

nlohmann::json schedule_template(const nlohmann::json &body) {
    for (const char *k : {"job_template", "job_definition", "export_options"})
        if (body.contains(k) && body[k].is_object()) return body[k];
    return nlohmann::json::object();
}

// The template of an update over the stored one: what the update leaves out stays (the old SDK
// client sends back only vm_path and name), and a "********" it got from GET keeps the stored secret.
nlohmann::json merge_template(const nlohmann::json &stored, const nlohmann::json &update) {
    if (!stored.is_object() || !update.is_object()) return update.is_string() && update == "********" ? stored : update;
    nlohmann::json out = stored;
    for (const auto &[k, v] : update.items()) out[k] = stored.contains(k) ? merge_template(stored[k], v) : v;
    return out;
}

}  // namespace

ScheduleBook::ScheduleBook(Store &store, SecretBox &box, Fire fire) : store_(store), box_(box), fire_(std::move(fire)) {}

ScheduleBook::~ScheduleBook() { stop(); }

Result<ScheduleBook::Entry> ScheduleBook::build(const std::string &id, const nlohmann::json &body, const nlohmann::json *previous) {
    if (!body.is_object()) return fail(Errc::invalid_argument, "invalid request: a schedule must be a JSON object");
    const std::string name = body.value("name", previous ? previous->value("name", "") : "");
    if (name.empty()) return fail(Errc::invalid_argument, "invalid request: name is required");
    std::string text = schedule_text(body);
    if (text.empty() && previous) text = previous->value("schedule", "");
    if (text.empty()) return fail(Errc::invalid_argument, "invalid request: schedule (a cron expression) is required");
    HSDK_TRY(auto cron, parse_cron(text));
    const std::string kind = body.value("kind", previous ? previous->value("kind", "export") : "export");
    nlohmann::json tmpl = schedule_template(body);
    if (kind == "export" && tmpl.empty() && !previous) return fail(Errc::invalid_argument, "invalid request: job_template is required");
    const std::string window = body.value("time_window", previous ? previous->value("time_window", "") : "");
    if (!window.empty()) HSDK_TRYV(parse_time_window(window));
    const auto now = rfc3339(Clock::now());
    Entry e;
    e.cron = cron;
    nlohmann::json shown = previous ? *previous : nlohmann::json::object();
    shown["id"] = id;
    shown["name"] = name;
    shown["schedule"] = text;
    shown["kind"] = kind;
    if (!tmpl.empty()) shown["job_template"] = redact_secrets(tmpl);
    for (const char *k : {"description", "tags", "priority", "max_retries", "vm_filter", "retention", "repo"})
        if (body.contains(k)) shown[k] = body[k];
    shown["time_window"] = window;
    shown["enabled"] = body.value("enabled", previous ? previous->value("enabled", true) : true);
    if (!shown.contains("created_at")) shown["created_at"] = now;
    shown["updated_at"] = now;
    if (!shown.contains("run_count")) shown["run_count"] = 0;
    if (!shown.contains("last_run")) shown["last_run"] = nullptr;
    if (!shown.contains("tags")) shown["tags"] = nlohmann::json::array();
    e.next = next_after(cron, Clock::now(), false);
    shown["next_run"] = e.next == TimePoint::max() ? nlohmann::json() : nlohmann::json(rfc3339(e.next));
    e.shown = std::move(shown);
    if (!tmpl.empty()) {
        HSDK_TRY(auto sealed, box_.seal(tmpl));
        e.sealed = std::move(sealed);
    }
    return e;
}

Result<void> ScheduleBook::load() {
    HSDK_TRY(auto rows, store_.load("schedules"));
    std::lock_guard lock(mutex_);
    for (auto &row : rows) {
        auto cron = parse_cron(row.doc.value("schedule", ""));
        if (!cron) {
            log(LogLevel::error, fmt::format("schedule {}: {}", row.id, cron.error().message));
            continue;
        }
        Entry e{row.doc, row.sealed, cron.value(), next_after(cron.value(), Clock::now(), false)};
        e.shown["next_run"] = e.next == TimePoint::max() ? nlohmann::json() : nlohmann::json(rfc3339(e.next));
        entries_[row.id] = std::move(e);
    }
    return success();
}

void ScheduleBook::start() {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
}

void ScheduleBook::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
}

Result<nlohmann::json> ScheduleBook::create(const nlohmann::json &body) {
    const std::string id = new_uuid();
    HSDK_TRY(auto e, build(id, body, nullptr));
    HSDK_TRYV(store_.put("schedules", {id, e.shown, e.sealed}));
    std::lock_guard lock(mutex_);
    auto shown = e.shown;
    entries_[id] = std::move(e);
    changed_.notify_all();
    log(LogLevel::info, fmt::format("schedule created: {} ({} \"{}\")", id, shown["name"].get<std::string>(), shown["schedule"].get<std::string>()));
    return shown;
}

Result<nlohmann::json> ScheduleBook::update(const std::string &id, const nlohmann::json &body) {
    std::unique_lock lock(mutex_);
    const auto it = entries_.find(id);
    if (it == entries_.end()) return fail(Errc::not_found, "schedule not found: " + id);
    const auto previous = it->second.shown;
    const auto sealed = it->second.sealed;
    lock.unlock();
    nlohmann::json merged = body;
    if (const auto tmpl = schedule_template(body); !tmpl.empty()) {
        HSDK_TRY(auto stored, box_.unseal(sealed));
        for (const char *k : {"job_template", "job_definition", "export_options"}) merged.erase(k);
        merged["job_template"] = merge_template(stored, tmpl);
    }
    HSDK_TRY(auto e, build(id, merged, &previous));
    if (e.sealed.empty()) e.sealed = sealed;
    HSDK_TRYV(store_.put("schedules", {id, e.shown, e.sealed}));
    lock.lock();
    auto shown = e.shown;
    entries_[id] = std::move(e);
    changed_.notify_all();
    return shown;
}

Result<void> ScheduleBook::remove(const std::string &id) {
    std::lock_guard lock(mutex_);
    if (!entries_.count(id)) return fail(Errc::not_found, "schedule not found: " + id);
    HSDK_TRYV(store_.remove("schedules", id));
    entries_.erase(id);
    return success();
}

Result<nlohmann::json> ScheduleBook::set_enabled(const std::string &id, bool enabled) {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(id);
    if (it == entries_.end()) return fail(Errc::not_found, "schedule not found: " + id);
    auto &e = it->second;
    e.shown["enabled"] = enabled;
    e.shown["updated_at"] = rfc3339(Clock::now());
    e.next = next_after(e.cron, Clock::now(), false);
    e.shown["next_run"] = e.next == TimePoint::max() ? nlohmann::json() : nlohmann::json(rfc3339(e.next));
    HSDK_TRYV(store_.put("schedules", {id, e.shown, e.sealed}));
    changed_.notify_all();
    return e.shown;
}

Result<std::vector<std::string>> ScheduleBook::fire_locked(Entry &e, std::unique_lock<std::mutex> &lock) {
    auto tmpl = box_.unseal(e.sealed);
    if (!tmpl) return fail(tmpl.error());
    const auto shown = e.shown;
    const std::string id = shown.value("id", "");
    lock.unlock();
    auto ids = fire_(shown, tmpl.value());
    lock.lock();
    // The entry may have been removed while the jobs were submitted.
    const auto it = entries_.find(id);
    if (it == entries_.end()) return ids;
    auto &entry = it->second;
    entry.shown["last_run"] = rfc3339(Clock::now());
    entry.shown["run_count"] = entry.shown.value("run_count", 0) + 1;
    if (ids) entry.shown["last_job_ids"] = ids.value();
    else entry.shown["last_error"] = ids.error().message;
    auto stored = store_.put("schedules", {id, entry.shown, entry.sealed});
    if (!stored) log(LogLevel::error, fmt::format("schedule {}: cannot save: {}", id, stored.error().message));
    return ids;
}

Result<std::vector<std::string>> ScheduleBook::trigger(const std::string &id) {
    std::unique_lock lock(mutex_);
    const auto it = entries_.find(id);
    if (it == entries_.end()) return fail(Errc::not_found, "schedule not found: " + id);
    return fire_locked(it->second, lock);
}

std::optional<nlohmann::json> ScheduleBook::get(const std::string &id) const {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(id);
    if (it == entries_.end()) return std::nullopt;
    return it->second.shown;
}

std::vector<nlohmann::json> ScheduleBook::list() const {
    std::vector<nlohmann::json> out;
    std::lock_guard lock(mutex_);
    for (const auto &[id, e] : entries_) out.push_back(e.shown);
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.value("created_at", "") < b.value("created_at", ""); });
    return out;
}

void ScheduleBook::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const auto now = Clock::now();
        auto wake = now + std::chrono::seconds(30);
        std::vector<std::string> due;
        for (auto &[id, e] : entries_) {
            if (!e.shown.value("enabled", true)) continue;
            if (e.next <= now) due.push_back(id);
            else wake = std::min(wake, e.next);
        }
        for (const auto &id : due) {
            auto it = entries_.find(id);
            if (it == entries_.end()) continue;
            // Next firing from now: a daemon that was down does not fire a burst of missed runs.
            it->second.next = next_after(it->second.cron, Clock::now(), false);
            it->second.shown["next_run"] = it->second.next == TimePoint::max() ? nlohmann::json() : nlohmann::json(rfc3339(it->second.next));
            auto fired = fire_locked(it->second, lock);
            if (!fired) log(LogLevel::error, fmt::format("schedule {} could not submit its job: {}", id, fired.error().message));
            if (stopping_) return;
        }
        if (!due.empty()) continue;
        changed_.wait_until(lock, wake);
    }
}

}  // namespace hypersdk::service
