// Operations and jobs: runJson (hsdk_run_json on the pool, a Promise of the result JSON), and
// NativeJob (hsdk_job_start; wait() on the pool). Progress reaches JavaScript through the
// ProgressBridge, cancellation through the job's CancelToken.
//
// A job is waited for from the moment it starts (lib/ops.js calls wait() at once), and the wait
// holds the handle: the garbage collector can free a NativeJob only once its job has finished, so
// hsdk_job_free never blocks the JavaScript thread on a job whose progress needs that thread.
#include "cancel.hpp"
#include "progress.hpp"
#include "string_worker.hpp"
#include "values.hpp"
#include "worker.hpp"

#include <memory>

namespace hsdk_node {
namespace {

struct JobRequest {
    std::string operation;
    std::string request_json;
    CancelHandle cancel;
    std::shared_ptr<ProgressBridge> progress;
};

// (operation, requestJson, {onProgress, cancel}) from JavaScript.
JobRequest job_request(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    JobRequest r;
    r.operation = string_value(env, info[0], "operation");
    r.request_json = string_value(env, info[1], "request");
    Napi::Object o = info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
    r.cancel = cancel_handle_from(env, o.Get("cancel"));
    Napi::Value on_progress = o.Get("onProgress");
    if (on_progress.IsFunction()) r.progress = ProgressBridge::Create(env, on_progress.As<Napi::Function>(), r.cancel);
    else if (!on_progress.IsUndefined() && !on_progress.IsNull()) throw_invalid_argument(env, "onProgress must be a function");
    return r;
}

hsdk_job_callbacks callbacks_of(const JobRequest &r) {
    hsdk_job_callbacks cb = HSDK_JOB_CALLBACKS_INIT;
    cb.cancel = r.cancel.get();
    if (r.progress) {
        cb.progress = &ProgressBridge::Callback;
        cb.user_data = r.progress.get();
    }
    return cb;
}

class RunWorker : public PromiseWorker {
public:
    RunWorker(Napi::Env env, JobRequest request) : PromiseWorker(env, "hypersdk.run"), request_(std::move(request)) {}

private:
    hsdk_status Run() override {
        const hsdk_job_callbacks cb = callbacks_of(request_);
        char *out = nullptr;
        const hsdk_status status = hsdk_run_json(&out, request_.operation.c_str(), request_.request_json.c_str(), &cb);
        result_ = take_string(out);
        return status;
    }
    void Finish() override {
        if (request_.progress) request_.progress->Release();
    }
    Napi::Value CallbackException(Napi::Env env) override {
        return request_.progress ? request_.progress->Thrown(env) : Napi::Value();
    }
    Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, result_); }

    JobRequest request_;
    std::string result_;
};

Napi::Value run_json(const Napi::CallbackInfo &info) {
    return (new RunWorker(info.Env(), job_request(info)))->Start();
}

// The C handle and what its callbacks need, shared by the NativeJob and its wait.
struct JobHandle {
    hsdk_job *job = nullptr;
    JobRequest request;
    ~JobHandle() { hsdk_job_free(job); }
};

class WaitWorker : public PromiseWorker {
public:
    WaitWorker(Napi::Env env, std::shared_ptr<JobHandle> handle) : PromiseWorker(env, "hypersdk.job.wait"), handle_(std::move(handle)) {}

private:
    hsdk_status Run() override { return hsdk_job_wait(handle_->job, -1); }
    void Finish() override {
        if (handle_->request.progress) handle_->request.progress->Release();
    }
    Napi::Value CallbackException(Napi::Env env) override {
        return handle_->request.progress ? handle_->request.progress->Thrown(env) : Napi::Value();
    }
    Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

    std::shared_ptr<JobHandle> handle_;
};

class NativeJob : public Napi::ObjectWrap<NativeJob> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "NativeJob",
                           {InstanceAccessor<&NativeJob::Id>("id"), InstanceAccessor<&NativeJob::State>("state"),
                            InstanceMethod<&NativeJob::Wait>("wait"), InstanceMethod<&NativeJob::Cancel>("cancel"),
                            InstanceMethod<&NativeJob::ResultJson>("resultJson"), InstanceMethod<&NativeJob::InfoJson>("infoJson")});
    }

    // new NativeJob(operation, requestJson, {onProgress, cancel}): validates and starts the job.
    explicit NativeJob(const Napi::CallbackInfo &info) : Napi::ObjectWrap<NativeJob>(info) {
        auto handle = std::make_shared<JobHandle>();
        handle->request = job_request(info);
        const hsdk_job_callbacks cb = callbacks_of(handle->request);
        const hsdk_status status =
            hsdk_job_start(&handle->job, handle->request.operation.c_str(), handle->request.request_json.c_str(), &cb);
        if (status != HSDK_OK) {
            if (handle->request.progress) handle->request.progress->Release();
            throw_failure(info.Env(), capture_failure(status));
        }
        handle_ = std::move(handle);
    }

private:
    Napi::Value Id(const Napi::CallbackInfo &info) { return Napi::String::New(info.Env(), hsdk_job_id(handle_->job)); }
    Napi::Value State(const Napi::CallbackInfo &info) {
        return Napi::String::New(info.Env(), hsdk_job_state_name(hsdk_job_state(handle_->job)));
    }
    Napi::Value Wait(const Napi::CallbackInfo &info) { return (new WaitWorker(info.Env(), handle_))->Start(); }
    Napi::Value Cancel(const Napi::CallbackInfo &info) {
        hsdk_job_cancel(handle_->job);
        return info.Env().Undefined();
    }
    Napi::Value ResultJson(const Napi::CallbackInfo &info) {
        char *out = nullptr;
        const hsdk_status status = hsdk_job_result_json(&out, handle_->job);
        if (status != HSDK_OK) throw_failure(info.Env(), capture_failure(status));
        return Napi::String::New(info.Env(), take_string(out));
    }
    Napi::Value InfoJson(const Napi::CallbackInfo &info) {
        char *out = nullptr;
        const hsdk_status status = hsdk_job_info_json(&out, handle_->job);
        if (status != HSDK_OK) throw_failure(info.Env(), capture_failure(status));
        return Napi::String::New(info.Env(), take_string(out));
    }

    std::shared_ptr<JobHandle> handle_;
};

Napi::Value ops_json(const Napi::CallbackInfo &info) {
    char *out = nullptr;
    const hsdk_status status = hsdk_ops_json(&out);
    if (status != HSDK_OK) throw_failure(info.Env(), capture_failure(status));
    return Napi::String::New(info.Env(), take_string(out));
}

// The in-process service: a request {method, target, headers, body} as JSON, resolved with the
// response {status, content_type, headers, body} as JSON (lib/native.js wraps both ends).
Napi::Value service_request_json(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw_invalid_argument(env, "serviceRequestJson takes a JSON string");
    std::string request = info[0].As<Napi::String>().Utf8Value();
    auto *worker = new StringWorker(env, "hypersdk.serviceRequest",
                                    [request = std::move(request)](char **out) { return hsdk_service_request(request.c_str(), out); });
    return worker->Start();
}

Napi::Value configure_executor(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw_invalid_argument(env, "configureExecutor takes an object");
    Napi::Object o = info[0].As<Napi::Object>();
    hsdk_executor_options c = HSDK_EXECUTOR_OPTIONS_INIT;
    auto limit = [&](const char *key) -> unsigned {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined()) return 0;
        const std::uint64_t n = u64_value(env, v, key);
        if (n > 4096) throw_invalid_argument(env, std::string(key) + " must be at most 4096");
        return static_cast<unsigned>(n);
    };
    c.max_jobs = limit("maxJobs");
    c.worker_threads = limit("workerThreads");
    c.io_threads = limit("ioThreads");
    const hsdk_status status = hsdk_executor_configure(&c);
    if (status != HSDK_OK) throw_failure(env, capture_failure(status));
    return env.Undefined();
}

Napi::Value executor_stats_json(const Napi::CallbackInfo &info) {
    char *out = nullptr;
    const hsdk_status status = hsdk_executor_stats_json(&out);
    if (status != HSDK_OK) throw_failure(info.Env(), capture_failure(status));
    return Napi::String::New(info.Env(), take_string(out));
}

}  // namespace

void init_jobs(Napi::Env env, Napi::Object exports) {
    exports.Set("runJson", Napi::Function::New(env, run_json, "runJson"));
    exports.Set("NativeJob", NativeJob::Define(env));
    exports.Set("opsJson", Napi::Function::New(env, ops_json, "opsJson"));
    exports.Set("serviceRequestJson", Napi::Function::New(env, service_request_json, "serviceRequestJson"));
    exports.Set("configureExecutor", Napi::Function::New(env, configure_executor, "configureExecutor"));
    exports.Set("executorStatsJson", Napi::Function::New(env, executor_stats_json, "executorStatsJson"));
}

}  // namespace hsdk_node
