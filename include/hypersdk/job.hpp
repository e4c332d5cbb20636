// Jobs: every operation runs as one. A job has an id, a state, progress events of one type for every
// operation, its own log lines, cancel from any thread, and a result JSON or an error. All jobs share
// the executor (<hypersdk/executor.hpp>): beyond its max_jobs, jobs wait queued.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/progress.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk {

enum class JobState { queued = 0, running = 1, succeeded = 2, failed = 3, cancelled = 4 };

// "queued", "running", "succeeded", "failed", "cancelled".
[[nodiscard]] std::string_view job_state_name(JobState state) noexcept;
[[nodiscard]] inline bool job_finished(JobState s) noexcept { return s != JobState::queued && s != JobState::running; }

struct JobLogLine {
    std::chrono::system_clock::time_point time;
    LogLevel level = LogLevel::info;
    std::string message;
};

struct JobCallbacks {
    // Every progress event (may run on any thread, at most every 100 ms and at phase changes).
    // Answering ProgressAction::cancel, or throwing, cancels the job; what it threw is rethrown by
    // run_operation() in the caller.
    ProgressCallback progress;
    // The job's own log lines at log_level and above (any thread; an exception it throws is dropped).
    std::function<void(LogLevel, std::string_view job_id, std::string_view message)> log;
    LogLevel log_level = LogLevel::info;
    // Once, when the job has finished (result set, waiters woken); on the job's thread, or on the
    // thread that cancels a job still queued. An exception it throws is dropped.
    std::function<void(const class Job &)> finished;
    // The job uses this token as its own: cancelling it cancels the job (and Job::cancel() cancels it).
    CancelToken cancel;
};

class Job {
public:
    virtual ~Job() = default;
    [[nodiscard]] virtual const std::string &id() const noexcept = 0;         // a UUID
    [[nodiscard]] virtual const std::string &operation() const noexcept = 0;  // "image.convert"
    [[nodiscard]] virtual JobState state() const = 0;
    // From any thread. A queued job becomes cancelled at once without running; a running one stops
    // at its next unit of work and cleans up (no partial output is left).
    virtual void cancel() noexcept = 0;
    virtual void wait() const = 0;
    // True when the job finished within `timeout`.
    [[nodiscard]] virtual bool wait_for(std::chrono::milliseconds timeout) const = 0;
    // The result of a succeeded job; the error of a failed or cancelled one; conflict while it runs.
    [[nodiscard]] virtual Result<nlohmann::json> result() const = 0;
    // The latest progress event (phase "queued" before it starts).
    [[nodiscard]] virtual ProgressInfo progress() const = 0;
    // The last 1000 log lines of the job (info and above).
    [[nodiscard]] virtual std::vector<JobLogLine> logs() const = 0;
    // The request as given, with defaults filled in and secrets replaced by "********".
    [[nodiscard]] virtual const nlohmann::json &request() const noexcept = 0;
    // {id, operation, state, request, progress{...}, error{code, message}?, created, started?, finished?}
    [[nodiscard]] virtual nlohmann::json info() const = 0;
    // What a callback threw, if one did (run_operation rethrows it).
    [[nodiscard]] virtual std::exception_ptr callback_exception() const = 0;
};

// Validates the request (prepare_request), then queues the job on the executor. A bad request fails
// here, before any job exists.
Result<std::shared_ptr<Job>> start_job(std::string_view operation, const nlohmann::json &request, JobCallbacks callbacks = {});

// start_job + wait: the result, or the job's error. If a callback threw, its exception is rethrown here.
// An operation that is not long-running runs on the calling thread instead of waiting for a job slot.
Result<nlohmann::json> run_operation(std::string_view operation, const nlohmann::json &request, JobCallbacks callbacks = {});

// The JSON form of a progress event: {phase, bytes_done, bytes_total, items_done, items_total,
// item_index, current_item, item_bytes_done, item_bytes_total, rate_bytes_per_sec, eta_seconds, finished}.
[[nodiscard]] nlohmann::json to_json(const ProgressInfo &progress);

}  // namespace hypersdk
