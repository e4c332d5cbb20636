// Jobs: one operation each, run on the executor's job pool.
#include <hypersdk/job.hpp>
#include <hypersdk/ops.hpp>

#include "core/executor.hpp"
#include "core/log_context.hpp"
#include "ops/registry.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>

namespace hypersdk {
namespace {

constexpr std::size_t max_log_lines = 1000;

std::string new_job_id() {
    // A version 4 UUID: 122 random bits.
    thread_local std::mt19937_64 rng{std::random_device{}() ^ (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
    const std::uint64_t hi = (rng() & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
    const std::uint64_t lo = (rng() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", hi >> 32, (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                       lo & 0xffffffffffffULL);
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(t)), ms);
}

class JobImpl;

class JobContext final : public ops::Context {
public:
    JobContext(JobImpl &job, const nlohmann::json &request) : job_(job), request_(request) {}
    const nlohmann::json &request() const noexcept override { return request_; }
    const CancelToken &cancel() const noexcept override;
    const std::string &job_id() const noexcept override;
    ProgressCallback progress() override;
    void report(const ProgressInfo &progress) override;

private:
    JobImpl &job_;
    const nlohmann::json &request_;
};

class JobImpl final : public Job, public std::enable_shared_from_this<JobImpl> {
public:
    JobImpl(const ops::Entry &entry, nlohmann::json request, JobCallbacks callbacks)
        : entry_(entry),
          id_(new_job_id()),
          request_(std::move(request)),
          redacted_(entry.request.redact(request_)),
          callbacks_(std::move(callbacks)),
          token_(callbacks_.cancel),
          created_(std::chrono::system_clock::now()) {
        progress_.phase = "queued";
        progress_.job_id = id_;
    }

    const std::string &id() const noexcept override { return id_; }
    const std::string &operation() const noexcept override { return entry_.info.name; }
    const CancelToken &token() const noexcept { return token_; }

    JobState state() const override {
        std::lock_guard lock(mutex_);
        return state_;
    }

    void cancel() noexcept override {
        token_.cancel();
        bool was_queued = false;
        {
            std::lock_guard lock(mutex_);
            if (state_ == JobState::queued) {
                was_queued = true;
                finish_locked(fail(Errc::cancelled, fmt::format("{} cancelled before it started", entry_.info.name)));
            }
        }
        if (was_queued) announce_finished();
    }

    void wait() const override {
        std::unique_lock lock(mutex_);
        finished_cv_.wait(lock, [this] { return job_finished(state_); });
    }

    bool wait_for(std::chrono::milliseconds timeout) const override {
        std::unique_lock lock(mutex_);
        return finished_cv_.wait_for(lock, timeout, [this] { return job_finished(state_); });
    }

    Result<nlohmann::json> result() const override {
        std::lock_guard lock(mutex_);
        if (!job_finished(state_)) return fail(Errc::conflict, fmt::format("job {} has not finished", id_));
        if (error_) return fail(*error_);
        return *result_;
    }

    ProgressInfo progress() const override {
        std::lock_guard lock(mutex_);
        return progress_;
    }

    std::vector<JobLogLine> logs() const override {
        std::lock_guard lock(mutex_);
        return {logs_.begin(), logs_.end()};
    }

    const nlohmann::json &request() const noexcept override { return redacted_; }

    nlohmann::json info() const override {
        std::lock_guard lock(mutex_);
        nlohmann::json j{{"id", id_},
                         {"operation", entry_.info.name},
                         {"state", std::string(job_state_name(state_))},
                         {"request", redacted_},
                         {"progress", to_json(progress_)},
                         {"created", rfc3339(created_)}};
        if (started_) j["started"] = rfc3339(*started_);
        if (ended_) j["finished"] = rfc3339(*ended_);
        if (error_) j["error"] = {{"code", std::string(errc_name(error_->code))}, {"message", error_->message}};
        return j;
    }

    std::exception_ptr callback_exception() const override {
        std::lock_guard lock(mutex_);
        return thrown_;
    }

    void post() {
        core::Executor::instance().jobs().post([self = shared_from_this()] { self->run(); });
    }
    // On the calling thread, for a quick operation a caller waits for anyway.
    void run_here() { run(); }

    // ---- for the context ---------------------------------------------------------------------

    void report(const ProgressInfo &event) {
        ProgressInfo p = event;
        p.job_id = id_;
        {
            std::lock_guard lock(mutex_);
            progress_ = p;
        }
        if (!callbacks_.progress) return;
        try {
            if (callbacks_.progress(p) == ProgressAction::cancel) token_.cancel();
        } catch (...) {
            {
                std::lock_guard lock(mutex_);
                if (!thrown_) thrown_ = std::current_exception();
            }
            token_.cancel();
        }
    }

    void log_line(LogLevel level, std::string_view message) {
        if (static_cast<int>(level) >= static_cast<int>(LogLevel::info)) {
            std::lock_guard lock(mutex_);
            logs_.push_back(JobLogLine{std::chrono::system_clock::now(), level, std::string(message)});
            if (logs_.size() > max_log_lines) logs_.pop_front();
        }
        if (callbacks_.log && static_cast<int>(level) >= static_cast<int>(callbacks_.log_level)) {
            try {
                callbacks_.log(level, id_, message);
            } catch (...) {
                // A failing log callback must not break the job that logged.
            }
        }
    }

private:
    void run() {
        {
            std::lock_guard lock(mutex_);
            if (state_ != JobState::queued) return;  // cancelled while it waited
            state_ = JobState::running;
            started_ = std::chrono::system_clock::now();
            progress_.phase = "starting";
        }
        auto context = std::make_shared<core::LogContext>();
        context->tag = "job " + id_;
        context->min_level = std::min(LogLevel::info, callbacks_.log_level);
        std::weak_ptr<JobImpl> weak = weak_from_this();
        context->sink = [weak](LogLevel level, std::string_view message) {
            if (auto self = weak.lock()) self->log_line(level, message);
        };
        Result<nlohmann::json> r = fail(Errc::internal, "operation did not run");
        {
            core::ScopedLogContext scope(context);
            log(LogLevel::info, fmt::format("{} started", entry_.info.name));
            if (token_.is_cancelled()) {
                r = fail(Errc::cancelled, fmt::format("{} cancelled before it started", entry_.info.name));
            } else {
                JobContext ctx(*this, request_);
                try {
                    r = entry_.handler(ctx);
                } catch (const std::bad_alloc &) {
                    r = fail(Errc::no_memory, "out of memory");
                } catch (const Exception &e) {
                    r = fail(e.error());
                } catch (const std::exception &e) {
                    r = fail(Errc::internal, fmt::format("internal error in {}: {}", entry_.info.name, e.what()));
                } catch (...) {
                    r = fail(Errc::internal, fmt::format("internal error in {}", entry_.info.name));
                }
            }
            std::exception_ptr thrown = callback_exception();
            if (thrown) {
                std::string what = "an exception";
                try {
                    std::rethrow_exception(thrown);
                } catch (const std::exception &e) {
                    what = e.what();
                } catch (...) {
                }
                r = fail(Errc::cancelled, fmt::format("{} cancelled: a callback threw: {}", entry_.info.name, what));
            }
            // A failure is the job's result, which its caller reports; logged at info so that a sink
            // showing warnings (the CLI's default) does not print the same error twice.
            if (r) log(LogLevel::info, fmt::format("{} succeeded", entry_.info.name));
            else log(LogLevel::info, fmt::format("{} {}: {}", entry_.info.name, r.error().code == Errc::cancelled ? "cancelled" : "failed",
                                                 r.error().message));
        }
        {
            std::lock_guard lock(mutex_);
            finish_locked(std::move(r));
        }
        announce_finished();
    }

    // Requires mutex_.
    void finish_locked(Result<nlohmann::json> r) {
        if (r) {
            state_ = JobState::succeeded;
            result_ = std::move(r).value();
        } else {
            state_ = r.error().code == Errc::cancelled ? JobState::cancelled : JobState::failed;
            error_ = std::move(r).error();
        }
        ended_ = std::chrono::system_clock::now();
        progress_.finished = true;
        // The request with its secrets is not needed any more: keep only the redacted copy.
        request_ = nlohmann::json();
    }

    void announce_finished() {
        finished_cv_.notify_all();
        if (!callbacks_.finished) return;
        try {
            callbacks_.finished(*this);
        } catch (...) {
            // Nothing to hand it to: the job is already finished.
        }
    }

    const ops::Entry &entry_;
    const std::string id_;
    nlohmann::json request_;  // as the handler sees it, secrets included; cleared when finished
    const nlohmann::json redacted_;
    const JobCallbacks callbacks_;
    CancelToken token_;
    const std::chrono::system_clock::time_point created_;

    mutable std::mutex mutex_;
    mutable std::condition_variable finished_cv_;
    JobState state_ = JobState::queued;
    std::optional<nlohmann::json> result_;
    std::optional<Error> error_;
    ProgressInfo progress_;
    std::deque<JobLogLine> logs_;
    std::exception_ptr thrown_;
    std::optional<std::chrono::system_clock::time_point> started_, ended_;
};

const CancelToken &JobContext::cancel() const noexcept { return job_.token(); }
const std::string &JobContext::job_id() const noexcept { return job_.id(); }

ProgressCallback JobContext::progress() {
    JobImpl *job = &job_;
    return [job](const ProgressInfo &p) {
        job->report(p);
        return job->token().is_cancelled() ? ProgressAction::cancel : ProgressAction::proceed;
    };
}

void JobContext::report(const ProgressInfo &progress) { job_.report(progress); }

}  // namespace

std::string_view job_state_name(JobState state) noexcept {
    switch (state) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::succeeded: return "succeeded";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
    }
    return "unknown";
}

nlohmann::json to_json(const ProgressInfo &p) {
    return {{"phase", p.phase},
            {"bytes_done", p.bytes_done},
            {"bytes_total", p.bytes_total},
            {"items_done", p.items_done},
            {"items_total", p.items_total},
            {"item_index", p.item_index},
            {"current_item", p.current_item},
            {"item_bytes_done", p.item_bytes_done},
            {"item_bytes_total", p.item_bytes_total},
            {"rate_bytes_per_sec", p.rate_bytes_per_sec},
            {"eta_seconds", p.eta_seconds},
            {"finished", p.finished}};
}

namespace {

Result<std::shared_ptr<JobImpl>> make_job(std::string_view operation, const nlohmann::json &request, JobCallbacks callbacks) {
    HSDK_TRY(auto prepared, prepare_request(operation, request));
    const auto *entry = ops::find_entry(operation);
    return std::make_shared<JobImpl>(*entry, std::move(prepared), std::move(callbacks));
}

}  // namespace

Result<std::shared_ptr<Job>> start_job(std::string_view operation, const nlohmann::json &request, JobCallbacks callbacks) {
    HSDK_TRY(auto job, make_job(operation, request, std::move(callbacks)));
    job->post();
    return std::shared_ptr<Job>(std::move(job));
}

Result<nlohmann::json> run_operation(std::string_view operation, const nlohmann::json &request, JobCallbacks callbacks) {
    HSDK_TRY(auto job, make_job(operation, request, std::move(callbacks)));
    // A quick operation runs on the caller's thread: it takes no job slot, so it never waits behind
    // long conversions (a Node or Python caller asking for a domain XML must not stall).
    if (find_operation(operation)->long_running) {
        job->post();
        job->wait();
    } else {
        job->run_here();
    }
    if (auto thrown = job->callback_exception()) std::rethrow_exception(thrown);
    return job->result();
}

}  // namespace hypersdk
