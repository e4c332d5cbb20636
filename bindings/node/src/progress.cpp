// ProgressBridge: see progress.hpp for why each report waits for the callback.
#include "progress.hpp"

#include "values.hpp"

namespace hsdk_node {

// One report in flight: lives on the reporting thread's stack until `handled` is set.
struct ProgressEvent {
    std::string phase;
    std::uint64_t bytes_done = 0;
    std::uint64_t bytes_total = 0;
    double rate_bytes_per_sec = 0;
    double eta_seconds = -1;
    std::uint64_t items_done = 0, items_total = 0, item_index = 0, item_bytes_done = 0, item_bytes_total = 0;
    std::string current_item, job_id;
    bool finished = false;
    bool handled = false;
};

std::shared_ptr<ProgressBridge> ProgressBridge::Create(Napi::Env env, Napi::Function callback, CancelHandle cancel) {
    std::shared_ptr<ProgressBridge> bridge(new ProgressBridge(std::move(cancel)));
    // The thread-safe function keeps the bridge alive until Node finalizes it, which may be after
    // the operation (and its reference) is gone.
    auto *keep = new std::shared_ptr<ProgressBridge>(bridge);
    bridge->tsfn_ = Tsfn::New(
        env, callback, "hypersdk.progress", 0, 1, bridge.get(),
        [](Napi::Env, std::shared_ptr<ProgressBridge> *held, ProgressBridge *) { delete held; }, keep);
    return bridge;
}

ProgressBridge::~ProgressBridge() = default;

int ProgressBridge::Callback(const hsdk_progress *progress, void *user_data) {
    if (progress == nullptr || user_data == nullptr) return 0;
    return static_cast<ProgressBridge *>(user_data)->Report(*progress);
}

int ProgressBridge::Report(const hsdk_progress &p) {
    ProgressEvent event;
    event.phase = p.phase != nullptr ? p.phase : "";
    event.bytes_done = p.bytes_done;
    event.bytes_total = p.bytes_total;
    event.rate_bytes_per_sec = p.rate_bytes_per_sec;
    event.eta_seconds = p.eta_seconds;
    // Fields since 0.2.0 (the library always passes its own, full struct).
    if (p.struct_size >= sizeof(hsdk_progress)) {
        event.items_done = p.items_done;
        event.items_total = p.items_total;
        event.item_index = p.item_index;
        event.current_item = p.current_item != nullptr ? p.current_item : "";
        event.item_bytes_done = p.item_bytes_done;
        event.item_bytes_total = p.item_bytes_total;
        event.finished = p.finished != 0;
        event.job_id = p.job_id != nullptr ? p.job_id : "";
    }
    if (tsfn_.NonBlockingCall(&event) != napi_ok) {
        // The environment is closing: nobody is left to ask, so stop.
        hsdk_cancel_request(cancel_.get());
        return 1;
    }
    std::unique_lock lock(mutex_);
    handled_.wait(lock, [&] { return event.handled; });
    return hsdk_cancel_requested(cancel_.get()) != 0 ? 1 : 0;
}

void ProgressBridge::Handled(ProgressEvent &event) {
    {
        std::lock_guard lock(mutex_);
        event.handled = true;  // the reporter may return (and drop `event`) from here on
    }
    handled_.notify_all();
}

void deliver_progress(Napi::Env env, Napi::Function callback, ProgressBridge *bridge, ProgressEvent *event) {
    if (bridge == nullptr || event == nullptr) return;
    if (env == nullptr || callback.IsEmpty()) {
        // Node is tearing the environment down and hands the report back unrun.
        hsdk_cancel_request(bridge->cancel_.get());
        bridge->Handled(*event);
        return;
    }
    try {
        Napi::HandleScope scope(env);
        Napi::Object p = Napi::Object::New(env);
        p.Set("phase", Napi::String::New(env, event->phase));
        p.Set("bytesDone", u64_number(env, event->bytes_done));
        p.Set("bytesTotal", u64_number(env, event->bytes_total));
        p.Set("rateBytesPerSec", Napi::Number::New(env, event->rate_bytes_per_sec));
        p.Set("etaSeconds", Napi::Number::New(env, event->eta_seconds));
        p.Set("itemsDone", u64_number(env, event->items_done));
        p.Set("itemsTotal", u64_number(env, event->items_total));
        p.Set("itemIndex", u64_number(env, event->item_index));
        p.Set("currentItem", Napi::String::New(env, event->current_item));
        p.Set("itemBytesDone", u64_number(env, event->item_bytes_done));
        p.Set("itemBytesTotal", u64_number(env, event->item_bytes_total));
        p.Set("finished", Napi::Boolean::New(env, event->finished));
        p.Set("jobId", Napi::String::New(env, event->job_id));
        Napi::Value answer = callback.Call({p});
        // Only `true` cancels: an async callback returns a Promise, which must not stop the job.
        if (answer.IsBoolean() && answer.As<Napi::Boolean>().Value()) hsdk_cancel_request(bridge->cancel_.get());
    } catch (const Napi::Error &e) {
        // The first exception wins; the operation stops and its Promise rejects with it.
        if (bridge->thrown_.IsEmpty()) bridge->thrown_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
        hsdk_cancel_request(bridge->cancel_.get());
    } catch (...) {
        hsdk_cancel_request(bridge->cancel_.get());
    }
    bridge->Handled(*event);
}

void ProgressBridge::Release() {
    if (released_) return;
    released_ = true;
    tsfn_.Release();
}

Napi::Value ProgressBridge::Thrown(Napi::Env) const { return thrown_.IsEmpty() ? Napi::Value() : thrown_.Value(); }

}  // namespace hsdk_node
