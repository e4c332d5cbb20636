// Progress reports from library threads to a JavaScript callback, through a ThreadSafeFunction.
//
// The library reports at most every 100 ms (and at phase changes), so each report waits until the
// callback has run: a callback that returns true, calls AbortController.abort() or throws then
// stops the operation at that very report, before any more data moves. The wait can never
// deadlock: the JavaScript thread never waits for a pool thread, and when the environment shuts
// down Node hands every queued report back without running it, which releases the waiter.
#pragma once

#include "cancel.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

namespace hsdk_node {

struct ProgressEvent;
class ProgressBridge;

void deliver_progress(Napi::Env env, Napi::Function callback, ProgressBridge *bridge, ProgressEvent *event);

class ProgressBridge {
public:
    // JavaScript thread. cancel is requested when the callback returns true or throws.
    static std::shared_ptr<ProgressBridge> Create(Napi::Env env, Napi::Function callback, CancelHandle cancel);

    // An hsdk_progress_fn; user_data is the bridge. Runs on library threads.
    static int Callback(const hsdk_progress *progress, void *user_data);

    // JavaScript thread, once the operation has returned: no report can follow.
    void Release();

    // JavaScript thread: what the callback threw, or an empty value.
    Napi::Value Thrown(Napi::Env env) const;

    ~ProgressBridge();

private:
    friend void deliver_progress(Napi::Env, Napi::Function, ProgressBridge *, ProgressEvent *);
    using Tsfn = Napi::TypedThreadSafeFunction<ProgressBridge, ProgressEvent, deliver_progress>;

    explicit ProgressBridge(CancelHandle cancel) : cancel_(std::move(cancel)) {}
    int Report(const hsdk_progress &progress);
    void Handled(ProgressEvent &event);

    CancelHandle cancel_;
    Tsfn tsfn_;
    bool released_ = false;
    Napi::Reference<Napi::Value> thrown_;  // JavaScript thread only
    std::mutex mutex_;
    std::condition_variable handled_;
};

}  // namespace hsdk_node
