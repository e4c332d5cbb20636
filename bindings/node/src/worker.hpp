// The shape of every long call: a Napi::AsyncWorker that runs C ABI calls on the libuv thread
// pool and settles a Promise on the JavaScript thread (the duckdb-node-neo practice).
#pragma once

#include "errors.hpp"

#include <exception>
#include <new>

namespace hsdk_node {

class PromiseWorker : public Napi::AsyncWorker {
public:
    explicit PromiseWorker(Napi::Env env, const char *name)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

    // Queues the work; the returned Promise settles when it is done.
    Napi::Promise Start() {
        Napi::Promise p = deferred_.Promise();
        Queue();
        return p;
    }

protected:
    // Pool thread: the C ABI calls. Return a failing status straight from the call that failed.
    virtual hsdk_status Run() = 0;
    // JavaScript thread: the value the Promise resolves with.
    virtual Napi::Value Result(Napi::Env env) = 0;
    // JavaScript thread, before settling: release what only this thread may release.
    virtual void Finish() {}
    // JavaScript thread: an exception a user callback threw, which wins over the library's status.
    virtual Napi::Value CallbackException(Napi::Env) { return Napi::Value(); }

private:
    void Execute() override {
        // Copying results (strings, extent lists) can throw; the library's own calls cannot.
        try {
            const hsdk_status status = Run();
            if (status != HSDK_OK) failure_ = capture_failure(status);  // this thread's hsdk_last_error(), copied now
        } catch (const std::bad_alloc &) {
            failure_ = Failure{HSDK_E_NOMEM, "out of memory"};
        } catch (const std::exception &e) {
            failure_ = Failure{HSDK_E_INTERNAL, e.what()};
        }
        if (failure_.status != HSDK_OK) SetError(failure_.message);
    }

    void OnOK() override { Settle(); }
    void OnError(const Napi::Error &) override { Settle(); }

    // node-addon-api has opened a handle scope around OnOK/OnError already.
    void Settle() {
        Napi::Env env = Env();
        Finish();
        try {
            Napi::Value thrown = CallbackException(env);
            if (!thrown.IsEmpty()) {
                deferred_.Reject(thrown);
            } else if (failure_.status != HSDK_OK) {
                deferred_.Reject(make_error(env, failure_));
            } else {
                deferred_.Resolve(Result(env));
            }
        } catch (const Napi::Error &e) {
            // Building the result failed: reject rather than throw into the event loop.
            try {
                deferred_.Reject(e.Value());
            } catch (const Napi::Error &) {
                // JavaScript can no longer run (a Worker is being terminated): nobody awaits this.
            }
        }
    }

    Napi::Promise::Deferred deferred_;
    Failure failure_;
};

}  // namespace hsdk_node
