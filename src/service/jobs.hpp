// The service's jobs: every submitted job is a record persisted before the submit is answered, then
// run as a library job (<hypersdk/job.hpp>) when the dispatcher lets it - by priority, once the jobs
// it depends on have completed, inside its time window, under the global and per-host limits, and
// again after a failure with exponential backoff while it has retries left. Cron schedules create
// jobs through the same path.
#pragma once

#include "service/compat.hpp"
#include "service/secret_box.hpp"
#include "service/store.hpp"
#include "service/util.hpp"

#include <hypersdk/job.hpp>
#include <hypersdk/service.hpp>

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hypersdk::service {

struct JobRecord {
    std::string id;
    std::uint64_t seq = 0;             // submission order (newest first in listings)
    std::string kind;                  // "export" (a /jobs/submit definition) or "operation" (/v1/ops)
    std::string name, operation, vm_path, host;
    std::string status = "pending";    // pending, running, completed, failed, cancelled
    nlohmann::json definition;         // as shown: secrets replaced
    nlohmann::json progress = nlohmann::json::object();  // the library's progress JSON
    nlohmann::json result;             // shown result (null until completed)
    std::string error, error_code;
    std::string created, updated, started, completed;  // RFC 3339, "" = not yet
    int priority = 0;
    std::vector<std::string> depends_on;
    unsigned max_retries = 0, attempts = 0;
    std::string not_before;            // RFC 3339: a retry waits until then
    std::string time_window;           // "22:00-06:00"
    std::string schedule_id;
    nlohmann::json handoff;            // hyper2kvm_integration (no secrets)
    double seconds = 0;

    nlohmann::json to_doc() const;
    static JobRecord from_doc(const std::string &id, const nlohmann::json &doc);
};

struct JobBoardSettings {
    unsigned workers = 4;
    unsigned per_host_limit = 0;
    std::chrono::milliseconds retry_base{30000}, retry_cap{std::chrono::minutes(30)};
    nlohmann::json hyper2kvm = nlohmann::json::object();
};

// What the board tells the rest of the service: "job.created", "job.started", "job.progress",
// "job.completed", "job.failed", "job.cancelled", with the job as /jobs/{id} shows it.
using JobListener = std::function<void(const std::string &event, const JobRecord &job, const nlohmann::json &shown)>;

// The secret part of a job: the complete definition or request, sealed in the database.
struct JobSubmission {
    std::string kind;                   // "export" or "operation"
    JobPlan plan;                       // operation + request (with secrets)
    nlohmann::json definition_shown;    // redacted
    nlohmann::json original;            // what was submitted, sealed for retries and restarts
    int priority = 0;
    std::vector<std::string> depends_on;
    unsigned max_retries = 0;
    std::string time_window;
    std::string schedule_id;
    std::string requested_id;           // the definition's own id (old SDK), used as the job's when free
};

class JobBoard {
public:
    JobBoard(Store &store, SecretBox &box, const Config &config, JobBoardSettings settings, JobListener listener);
    ~JobBoard();
    // Loads the jobs of earlier runs; the ones left running are failed "interrupted by restart".
    Result<void> load();
    void start();      // the dispatcher thread
    void shutdown();   // cancels running jobs; they are recorded as interrupted

    void reload(const Config &config, JobBoardSettings settings);

    // Validates and persists; the job runs when the dispatcher gets to it.
    Result<JobRecord> submit(JobSubmission submission);
    std::optional<JobRecord> get(const std::string &id) const;
    // Newest first.
    std::vector<JobRecord> list() const;
    // "cancelled" when it is; else the reason it could not be.
    Result<void> cancel(const std::string &id, std::chrono::milliseconds wait);
    // Waits until the job has finished (for /v1/ops ?wait=true); false on timeout.
    bool wait(const std::string &id, std::chrono::milliseconds timeout) const;
    std::vector<StoredLog> logs(const std::string &id, std::size_t limit) const;

    nlohmann::json shown(const JobRecord &job) const;
    struct Counts {
        std::uint64_t total = 0, pending = 0, running = 0, completed = 0, failed = 0, cancelled = 0;
    };
    Counts counts() const;

    // Called by the scheduler of schedules to wake the dispatcher (a new job may be due).
    void wake();

private:
    void dispatch_loop();
    bool eligible(const JobRecord &job, TimePoint now, std::map<std::string, unsigned> &per_host, std::string &fail_reason) const;
    void launch(JobRecord &job);
    void on_progress(const std::string &id, const ProgressInfo &progress);
    void on_log(const std::string &id, LogLevel level, std::string_view message);
    void on_finished(const std::string &id, const Job &job);
    void persist(const JobRecord &job, const std::string &sealed = {});
    void notify(const std::string &event, const JobRecord &job);
    std::optional<nlohmann::json> unseal_original(const std::string &id);

    Store &store_;
    SecretBox &box_;
    Config config_;
    JobBoardSettings settings_;
    JobListener listener_;

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::map<std::string, JobRecord> jobs_;
    std::map<std::string, std::shared_ptr<Job>> live_;
    std::map<std::string, std::string> sealed_;  // id -> sealed original (read once at launch)
    std::map<std::string, std::chrono::steady_clock::time_point> last_progress_event_;
    std::uint64_t next_seq_ = 1;
    bool stopping_ = false;
    std::thread dispatcher_;
};

}  // namespace hypersdk::service
