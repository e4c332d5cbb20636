// C ABI: the operation registry, jobs and the executor.
#include "capi_internal.hpp"

#include <hypersdk/executor.hpp>
#include <hypersdk/ops.hpp>

#include <fmt/format.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

// A job handle: the job, and what keeps the caller's callbacks from running after hsdk_job_free.
struct hsdk_job {
    std::shared_ptr<hypersdk::Job> job;
    struct Done {
        std::mutex mutex;
        std::condition_variable cv;
        bool done = false;                 // the finished callback (if any) has returned
        std::thread::id announcing;        // the thread running it
    };
    std::shared_ptr<Done> done;
};

namespace hypersdk::capi {

Result<void> check_struct_tail(const void *in, std::size_t caller_size, std::size_t our_size, const char *name) {
    if (caller_size < sizeof(std::size_t) || caller_size > max_struct_size)
        return fail(Errc::invalid_argument, fmt::format("invalid argument: {}.struct_size is {}: set it to sizeof({})", name, caller_size, name));
    const auto *bytes = static_cast<const unsigned char *>(in);
    for (std::size_t i = our_size; i < caller_size; ++i)
        if (bytes[i] != 0)
            return fail(Errc::invalid_argument,
                        fmt::format("invalid argument: {} is {} bytes with fields set beyond the {} this library (libhypersdk {}) "
                                    "knows: the caller was built for a newer libhypersdk",
                                    name, caller_size, our_size, hsdk_version()));
    return success();
}

char *copy_out(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p == nullptr) throw std::bad_alloc();
    std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

std::string dump(const nlohmann::json &j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

hsdk_progress to_c(const ProgressInfo &p) {
    hsdk_progress c{};
    c.struct_size = sizeof c;
    c.phase = p.phase.c_str();
    c.bytes_done = p.bytes_done;
    c.bytes_total = p.bytes_total;
    c.rate_bytes_per_sec = p.rate_bytes_per_sec;
    c.eta_seconds = p.eta_seconds;
    c.items_done = p.items_done;
    c.items_total = p.items_total;
    c.item_index = p.item_index;
    c.current_item = p.current_item.c_str();
    c.item_bytes_done = p.item_bytes_done;
    c.item_bytes_total = p.item_bytes_total;
    c.finished = p.finished ? 1 : 0;
    c.job_id = p.job_id.c_str();
    return c;
}

Result<nlohmann::json> run_typed(const char *operation, const nlohmann::json &request, const hsdk_cancel *cancel,
                                 hsdk_progress_fn progress, void *progress_user_data) {
    JobCallbacks cb;
    cb.cancel = token_of(cancel);
    if (progress != nullptr)
        cb.progress = [progress, progress_user_data](const ProgressInfo &p) {
            const hsdk_progress c = to_c(p);
            return progress(&c, progress_user_data) != 0 ? ProgressAction::cancel : ProgressAction::proceed;
        };
    return run_operation(operation, request, std::move(cb));
}

namespace {

Result<nlohmann::json> parse_request(const char *request_json) {
    if (request_json == nullptr || *request_json == '\0') return nlohmann::json::object();
    auto j = nlohmann::json::parse(request_json, nullptr, false);
    if (j.is_discarded()) return fail(Errc::invalid_argument, "invalid argument: request_json is not valid JSON");
    return j;
}

Result<JobCallbacks> callbacks_from(const hsdk_job_callbacks *in, const std::shared_ptr<hsdk_job::Done> &done) {
    HSDK_TRY(const hsdk_job_callbacks c,
             read_struct<hsdk_job_callbacks>(in, HSDK_JOB_CALLBACKS_INIT, "hsdk_job_callbacks"));
    if (c.log_level < HSDK_LOG_TRACE || c.log_level > HSDK_LOG_OFF)
        return fail(Errc::invalid_argument, "invalid argument: hsdk_job_callbacks.log_level is not an hsdk_log_level");
    JobCallbacks cb;
    cb.cancel = token_of(c.cancel);
    void *ud = c.user_data;
    if (c.progress != nullptr) {
        auto fn = c.progress;
        cb.progress = [fn, ud](const ProgressInfo &p) {
            const hsdk_progress cp = to_c(p);
            return fn(&cp, ud) != 0 ? ProgressAction::cancel : ProgressAction::proceed;
        };
    }
    if (c.log != nullptr) {
        auto fn = c.log;
        cb.log = [fn, ud](LogLevel level, std::string_view job_id, std::string_view message) {
            const std::string id(job_id), text(message);  // NUL-terminated for C
            fn(static_cast<hsdk_log_level>(level), id.c_str(), text.c_str(), ud);
        };
        cb.log_level = static_cast<LogLevel>(c.log_level);
    }
    auto fn = c.finished;
    cb.finished = [fn, ud, done](const Job &job) {
        {
            std::lock_guard lock(done->mutex);
            done->announcing = std::this_thread::get_id();
        }
        if (fn != nullptr) fn(static_cast<int>(job.state()), job.id().c_str(), ud);
        std::lock_guard lock(done->mutex);
        done->done = true;
        done->cv.notify_all();
    };
    return cb;
}

}  // namespace
}  // namespace hypersdk::capi

using namespace hypersdk;

extern "C" {

HSDK_API hsdk_status hsdk_ops_json(char **out_json) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        *out_json = capi::copy_out(capi::dump(operations_json()));
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_job_start(hsdk_job **out, const char *operation, const char *request_json,
                                    const hsdk_job_callbacks *callbacks) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out != nullptr);
        *out = nullptr;
        HSDK_CHECK_ARG(operation != nullptr);
        auto request = capi::parse_request(request_json);
        if (!request) return capi::set_error(request.error());
        auto done = std::make_shared<hsdk_job::Done>();
        auto cb = capi::callbacks_from(callbacks, done);
        if (!cb) return capi::set_error(cb.error());
        auto job = start_job(operation, request.value(), std::move(cb).value());
        if (!job) return capi::set_error(job.error());
        *out = new hsdk_job{std::move(job).value(), std::move(done)};
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_job_wait(hsdk_job *job, int64_t timeout_ms) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(job != nullptr);
        if (timeout_ms < 0) {
            job->job->wait();
            return HSDK_OK;
        }
        if (job->job->wait_for(std::chrono::milliseconds(timeout_ms))) return HSDK_OK;
        return capi::set_error(Errc::timeout, fmt::format("job {} has not finished within {} ms", job->job->id(), timeout_ms).c_str());
    });
}

HSDK_API int hsdk_job_state(const hsdk_job *job) {
    if (job == nullptr) return HSDK_E_INVALID;
    return static_cast<int>(job->job->state());
}

HSDK_API const char *hsdk_job_state_name(int state) {
    if (state < 0 || state > static_cast<int>(JobState::cancelled)) return "unknown";
    return job_state_name(static_cast<JobState>(state)).data();  // string literals, NUL-terminated
}

HSDK_API hsdk_status hsdk_job_cancel(hsdk_job *job) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(job != nullptr);
        job->job->cancel();
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_job_result_json(char **out_json, const hsdk_job *job) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        HSDK_CHECK_ARG(job != nullptr);
        auto r = job->job->result();
        if (!r) return capi::set_error(r.error());
        *out_json = capi::copy_out(capi::dump(r.value()));
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_job_info_json(char **out_json, const hsdk_job *job) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        HSDK_CHECK_ARG(job != nullptr);
        *out_json = capi::copy_out(capi::dump(job->job->info()));
        return HSDK_OK;
    });
}

HSDK_API const char *hsdk_job_id(const hsdk_job *job) { return job ? job->job->id().c_str() : ""; }

HSDK_API void hsdk_job_free(hsdk_job *job) {
    if (job == nullptr) return;
    try {
        if (!job_finished(job->job->state())) job->job->cancel();
        job->job->wait();
        std::unique_lock lock(job->done->mutex);
        // From the job's own finished callback, waiting for it to return would never end.
        if (job->done->announcing != std::this_thread::get_id()) job->done->cv.wait(lock, [&] { return job->done->done; });
    } catch (...) {
        // Freeing must not throw into C; the job keeps itself alive until it ends.
    }
    delete job;
}

HSDK_API hsdk_status hsdk_run_json(char **out_result_json, const char *operation, const char *request_json,
                                   const hsdk_job_callbacks *callbacks) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_result_json != nullptr);
        *out_result_json = nullptr;
        // Exactly start + wait + result, so both ways of running an operation behave alike.
        hsdk_job *job = nullptr;
        if (const hsdk_status st = hsdk_job_start(&job, operation, request_json, callbacks); st != HSDK_OK) return st;
        const std::unique_ptr<hsdk_job, void (*)(hsdk_job *)> owned(job, &hsdk_job_free);
        if (const hsdk_status st = hsdk_job_wait(job, -1); st != HSDK_OK) return st;
        return hsdk_job_result_json(out_result_json, job);
    });
}

HSDK_API hsdk_status hsdk_executor_configure(const hsdk_executor_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(options != nullptr);
        HSDK_READ_STRUCT(o, hsdk_executor_options, options, HSDK_EXECUTOR_OPTIONS_INIT);
        HSDK_CHECK_ARG(o.max_jobs <= 4096 && o.worker_threads <= 4096 && o.io_threads <= 4096);
        configure_executor(ExecutorLimits{o.max_jobs, o.worker_threads, o.io_threads});
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_executor_stats_json(char **out_json) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        const auto s = executor_stats();
        auto pool = [](const ExecutorPoolStats &p) {
            return nlohmann::json{{"limit", p.limit}, {"threads", p.threads}, {"busy", p.busy}, {"queued", p.queued}, {"peak_threads", p.peak_threads}};
        };
        nlohmann::json j{{"jobs", pool(s.jobs)}, {"workers", pool(s.workers)}, {"io", pool(s.io)}, {"timer_threads", s.timer_threads}};
        *out_json = capi::copy_out(capi::dump(j));
        return HSDK_OK;
    });
}

}  // extern "C"
