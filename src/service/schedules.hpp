// Schedules: a cron expression (5 fields, @daily-style macros, @every <duration>) that submits a
// job from its template each time it fires; and backup policies, whose firing runs a changed-block
// backup of every VM matching a filter, each followed by a prune by the retention. Persisted with
// their templates' secrets sealed; a schedule created over REST survives a restart.
#pragma once

#include "service/cron.hpp"
#include "service/jobs.hpp"

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace hypersdk::service {

class ScheduleBook {
public:
    // `fire` submits the jobs of one firing; it returns their ids.
    using Fire = std::function<Result<std::vector<std::string>>(const nlohmann::json &schedule, const nlohmann::json &template_with_secrets)>;
    ScheduleBook(Store &store, SecretBox &box, Fire fire);
    ~ScheduleBook();
    Result<void> load();
    void start();
    void stop();

    // body: {name, schedule|cron, job_template|job_definition, enabled?, description?, tags?, priority?,
    // time_window?, max_retries?} or a backup policy {kind:"backup_policy", vm_filter, retention, ...}.
    Result<nlohmann::json> create(const nlohmann::json &body);
    Result<nlohmann::json> update(const std::string &id, const nlohmann::json &body);
    Result<void> remove(const std::string &id);
    Result<nlohmann::json> set_enabled(const std::string &id, bool enabled);
    // Fires now, whatever the time; the ids of the jobs it submitted.
    Result<std::vector<std::string>> trigger(const std::string &id);
    std::optional<nlohmann::json> get(const std::string &id) const;
    std::vector<nlohmann::json> list() const;

private:
    struct Entry {
        nlohmann::json shown;     // what the API returns (template redacted)
        std::string sealed;       // the template with its secrets
        CronSchedule cron;
        TimePoint next;
    };
    Result<Entry> build(const std::string &id, const nlohmann::json &body, const nlohmann::json *previous);
    void loop();
    Result<std::vector<std::string>> fire_locked(Entry &entry, std::unique_lock<std::mutex> &lock);

    Store &store_;
    SecretBox &box_;
    Fire fire_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::map<std::string, Entry> entries_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace hypersdk::service
