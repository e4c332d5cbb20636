// Webhook sender of the service: job events POSTed as signed JSON to the configured hooks.
//
// emit() only queues and returns, so a job never waits for a receiver. One background thread drives
// every delivery through a libcurl multi handle: deliveries to different hooks run side by side (a
// hanging receiver holds up only its own hook), while each hook gets its events one at a time and
// in order. A failed attempt (connect error, timeout, non-2xx) is retried with exponential backoff
// and jitter; job.progress events still waiting are replaced by newer ones of the same job, and the
// queue is bounded, so a slow receiver cannot build up a backlog.
//
// Wire format (the contract receivers verify):
//   POST <url>
//   Content-Type: application/json
//   User-Agent: hypersdk/<version>
//   X-HyperSDK-Event: <event>
//   X-HyperSDK-Timestamp: <unix seconds of this attempt>
//   X-HyperSDK-Signature: sha256=<lowercase hex HMAC-SHA256 of the body, keyed with the secret>
//   <the hook's own headers>
//   {"event":"job.completed","timestamp":"2025-01-02T03:04:05Z","data":{...}}
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::service {

struct WebhookHook {
    std::string id;   // deliveries are queued per hook under this key ("" = the url is the key)
    std::string url;  // http:// or https://
    // Only these events; empty = every event. Legacy names are accepted: "job_completed" == "job.completed".
    std::vector<std::string> events;
    // Sent with every delivery (e.g. Authorization). The values are secrets: never logged or listed.
    std::map<std::string, std::string> headers;
    bool enabled = true;
    std::optional<std::string> secret;  // HMAC key of this hook instead of the service's one
    int timeout_seconds = 10;           // per attempt, connecting included
    int max_retries = 3;                // attempts after the first one
};

// A hook from its JSON form {id, url, events[], headers{}, enabled, secret?, timeout_seconds,
// max_retries}; absent fields take the defaults above. invalid_argument names the bad field.
Result<WebhookHook> parse_webhook_hook(const nlohmann::json &json);

// "job_completed" -> "job.completed"; names with a dot (and "test") are returned as they are.
std::string normalize_webhook_event(std::string_view event);

// scheme://host:port/path of a URL: user name, password, query and fragment removed, since any of
// them may carry a token. For log lines and error messages.
std::string redact_webhook_url(std::string_view url);

// The X-HyperSDK-Signature value for a body: "sha256=" + lowercase hex HMAC-SHA256(secret, body).
std::string webhook_signature(std::string_view secret, std::string_view body);

struct WebhookOptions {
    std::string secret;  // the service's webhook secret; "" = deliveries go unsigned
    // Delay before retry n (1, 2, ...): min(cap, base * 2^(n-1)), then a random point in its upper half.
    std::chrono::milliseconds backoff_base{500};
    std::chrono::milliseconds backoff_cap{30000};
    std::size_t max_pending = 10000;                 // waiting deliveries; beyond it the oldest are dropped
    std::chrono::milliseconds shutdown_grace{5000};  // how long stop() lets queued deliveries finish
    unsigned max_concurrent = 4;                     // transfers at once (at most one per hook)
    std::string ca_file;                             // PEM bundle instead of the system CAs ("" = system)
};

struct WebhookStats {
    std::uint64_t delivered = 0;  // deliveries a receiver answered with 2xx
    std::uint64_t failed = 0;     // deliveries given up after max_retries
    std::uint64_t retried = 0;    // attempts after a failed one
    std::uint64_t dropped = 0;    // never finished: queue full, hook removed, emitted after stop() or cut off by it
    std::uint64_t pending = 0;    // queued or in flight now
};

class WebhookSender {
public:
    // Starts the sender thread.
    explicit WebhookSender(WebhookOptions options = {});
    // stop(), then frees everything.
    ~WebhookSender();
    WebhookSender(const WebhookSender &) = delete;
    WebhookSender &operator=(const WebhookSender &) = delete;

    // Replaces the hooks. Waiting deliveries of hooks that are gone or disabled are dropped; those
    // of the others are sent with the new settings (URL, headers, secret) of their hook.
    void set_hooks(std::vector<WebhookHook> hooks);
    // The service's secret after a reload; signs the attempts made from now on.
    void set_secret(std::string secret);

    // Queues {event, timestamp: now, data} for every enabled hook that wants the event and returns at
    // once. Never throws; after stop() it does nothing.
    void emit(std::string event, nlohmann::json data);

    // One delivery of a "test" event to this hook, now, on the calling thread, whatever its event
    // list and enabled flag say, without retries: {url (redacted), status_code, success (2xx),
    // duration_ms}. A transfer that got no HTTP answer is an error naming the redacted URL.
    Result<nlohmann::json> test(const WebhookHook &hook);

    [[nodiscard]] WebhookStats stats() const;

    // Stops accepting events and lets the queue drain for up to shutdown_grace; what is still in
    // flight then is aborted, the rest dropped. Returns when the thread has ended. Idempotent.
    void stop();

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace hypersdk::service
