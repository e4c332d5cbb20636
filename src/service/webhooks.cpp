#include "service/webhooks.hpp"

#include "io/http.hpp"

#include <hypersdk/log.hpp>
#include <hypersdk/version.hpp>

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

namespace hypersdk::service {
// Named, not anonymous: State (declared in the header) holds these types, and in a unity batch an
// anonymous namespace would give its members internal linkage.
namespace webhook_detail {

using WebhookClock = std::chrono::steady_clock;
using WebhookNotes = std::vector<std::pair<LogLevel, std::string>>;

constexpr int webhook_max_timeout_seconds = 3600;
constexpr int webhook_max_retries_limit = 100;

void webhook_curl_init() {
    // curl_global_init is not thread-safe in every libcurl build: once per process, whoever comes first.
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

char webhook_lower_char(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string webhook_lower(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = webhook_lower_char(c);
    return out;
}

bool webhook_is_http_url(std::string_view url) {
    const std::string lower = webhook_lower(url.substr(0, 8));
    return (lower.starts_with("http://") && url.size() > 7) || (lower.starts_with("https://") && url.size() > 8);
}

// Event names travel in a header, so only a plain alphabet is accepted.
bool webhook_valid_event(std::string_view event) {
    if (event.empty() || event.size() > 100) return false;
    return std::all_of(event.begin(), event.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    });
}

// The sender sets these itself: the X-HyperSDK-* ones are the contract receivers verify, and the
// framing ones would corrupt the request if a hook replaced them.
bool webhook_reserved_header(std::string_view name) {
    const std::string n = webhook_lower(name);
    return n.starts_with("x-hypersdk-") || n == "content-type" || n == "content-length" || n == "transfer-encoding" ||
           n == "expect" || n == "user-agent" || n == "host" || n == "connection";
}

// "" when the header may be sent, else why not. A name outside the RFC 9110 token alphabet, or a CR,
// LF or NUL in the value, would split one configured header into several (or into the body).
std::string webhook_header_problem(std::string_view name, std::string_view value) {
    static constexpr std::string_view token_punct = "!#$%&'*+-.^_`|~";
    const bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || token_punct.find(c) != std::string_view::npos;
    });
    if (!name_ok) return "is not a valid header name";
    if (webhook_reserved_header(name)) return "is set by the sender and cannot be configured";
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) return "has a line break or NUL in its value";
    return {};
}

std::string webhook_rfc3339_utc(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return std::string(buf, n);
}

std::string webhook_body(const std::string &event, const nlohmann::json &data) {
    using nlohmann::json;
    // The replace handler: a job name with invalid UTF-8 must not make the event throw or vanish.
    constexpr auto replace = json::error_handler_t::replace;
    // Assembled by hand so the fields keep the documented order (nlohmann::json sorts keys).
    std::string body = R"({"event":)";
    body += json(event).dump(-1, ' ', false, replace);
    body += R"(,"timestamp":)";
    body += json(webhook_rfc3339_utc(std::chrono::system_clock::now())).dump();
    body += R"(,"data":)";
    body += data.is_null() ? std::string("{}") : data.dump(-1, ' ', false, replace);
    body += '}';
    return body;
}


// A hook as the sender keeps it: events normalised, unusable headers removed, log label made once.
struct WebhookEntry {
    WebhookHook hook;
    std::string label;  // "'<id>' <redacted url>": never the raw URL, which may carry a token
};

std::string webhook_key(const WebhookHook &hook) { return hook.id.empty() ? hook.url : hook.id; }

WebhookEntry webhook_entry(WebhookHook hook, WebhookNotes &notes) {
    WebhookEntry e;
    const std::string redacted = redact_webhook_url(hook.url);
    e.label = hook.id.empty() ? redacted : fmt::format("'{}' {}", hook.id, redacted);
    for (auto &ev : hook.events) ev = normalize_webhook_event(ev);
    for (auto it = hook.headers.begin(); it != hook.headers.end();) {
        if (auto problem = webhook_header_problem(it->first, it->second); !problem.empty()) {
            // The name only: the value may be a credential.
            notes.emplace_back(LogLevel::warn, fmt::format("webhook {}: header '{}' {}; not sent", e.label, it->first, problem));
            it = hook.headers.erase(it);
        } else {
            ++it;
        }
    }
    e.hook = std::move(hook);
    return e;
}

bool webhook_wants(const WebhookHook &hook, const std::string &event) {
    return hook.events.empty() || std::find(hook.events.begin(), hook.events.end(), event) != hook.events.end();
}

std::size_t webhook_discard_body(char *, std::size_t size, std::size_t count, void *) { return size * count; }

// One HTTP attempt: the easy handle and everything it points at, freed together.
struct WebhookAttempt {
    std::string key;
    std::string label;
    std::string event;
    std::shared_ptr<const std::string> body;  // CURLOPT_POSTFIELDS points into it: not copied per attempt
    CURL *easy = nullptr;
    curl_slist *headers = nullptr;

    WebhookAttempt() = default;
    WebhookAttempt(const WebhookAttempt &) = delete;
    WebhookAttempt &operator=(const WebhookAttempt &) = delete;
    ~WebhookAttempt() {
        if (easy != nullptr) curl_easy_cleanup(easy);
        curl_slist_free_all(headers);
    }
};

// nullptr only when libcurl cannot allocate.
std::unique_ptr<WebhookAttempt> webhook_make_attempt(const WebhookEntry &entry, const std::string &secret, const std::string &event,
                                                     std::shared_ptr<const std::string> body, const std::string &ca_file) {
    auto a = std::make_unique<WebhookAttempt>();
    a->key = webhook_key(entry.hook);
    a->label = entry.label;
    a->event = event;
    a->body = std::move(body);
    a->easy = curl_easy_init();
    if (a->easy == nullptr) return nullptr;

    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::vector<std::string> lines = {
        "Content-Type: application/json",
        fmt::format("User-Agent: hypersdk/{}", hypersdk::version()),
        "X-HyperSDK-Event: " + event,
        fmt::format("X-HyperSDK-Timestamp: {}", unix_now),
        // Without this libcurl holds bodies over 1 KiB back for up to a second waiting for "100 Continue".
        "Expect:",
    };
    // An empty key would make a signature anyone can forge: rather none than a misleading one.
    if (!secret.empty()) lines.push_back("X-HyperSDK-Signature: " + webhook_signature(secret, *a->body));
    for (const auto &[name, value] : entry.hook.headers) {
        if (!webhook_header_problem(name, value).empty()) continue;  // test() gets hooks unchecked
        // "Name;" is libcurl's spelling of a header with an empty value ("Name:" would remove it).
        lines.push_back(value.empty() ? name + ";" : name + ": " + value);
    }
    for (const auto &line : lines) {
        curl_slist *next = curl_slist_append(a->headers, line.c_str());
        if (next == nullptr) return nullptr;
        a->headers = next;
    }

    const long timeout_ms = static_cast<long>(std::clamp(entry.hook.timeout_seconds, 1, webhook_max_timeout_seconds)) * 1000L;
    CURL *e = a->easy;
    curl_easy_setopt(e, CURLOPT_URL, entry.hook.url.c_str());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);  // many threads: no SIGALRM for timeouts
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // a redirected POST is a misconfigured hook: report it
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, a->body->data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(a->body->size()));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, webhook_discard_body);  // default would write to stdout
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file.c_str());
    return a;
}

struct WebhookDelivery {
    std::uint64_t seq = 0;   // emit order across hooks: the smallest waiting one is dropped first
    std::string event;
    std::string job_key;     // job_id of a job.progress event, for coalescing; "" otherwise
    std::shared_ptr<const std::string> body;
    int attempts = 0;        // attempts finished
    WebhookClock::time_point due{};
};

// One hook's deliveries, oldest first. While in_flight the front one is being sent.
struct WebhookQueue {
    std::deque<WebhookDelivery> items;
    bool in_flight = false;
};

// What the sender thread takes out of the lock to start one attempt.
struct WebhookStart {
    WebhookEntry entry;
    std::string secret;
    std::string event;
    std::shared_ptr<const std::string> body;
};

void webhook_log(const WebhookNotes &notes) noexcept {
    for (const auto &[level, text] : notes) {
        try {
            hypersdk::log(level, text);
        } catch (...) {
            // A throwing log sink must not take the sender thread or a job thread down.
        }
    }
}

}  // namespace webhook_detail
using namespace webhook_detail;

// ---- free functions ------------------------------------------------------------------------------

std::string normalize_webhook_event(std::string_view event) {
    std::string out(event);
    // Legacy names ("job_completed") have no dot; only their first underscore separated the parts.
    if (out.find('.') == std::string::npos)
        if (const auto u = out.find('_'); u != std::string::npos) out[u] = '.';
    return out;
}

std::string redact_webhook_url(std::string_view url) {
    std::string_view u = url.substr(0, url.find_first_of("?#"));
    const auto scheme_end = u.find("://");
    const std::size_t authority_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    const std::size_t path_start = std::min(u.find('/', authority_start), u.size());
    // Userinfo is everything up to the last '@' of the authority; an '@' in the path is not one.
    const auto at = u.substr(authority_start, path_start - authority_start).rfind('@');
    if (at == std::string_view::npos) return std::string(u);
    return std::string(u.substr(0, authority_start)) + std::string(u.substr(authority_start + at + 1));
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    // HMAC() wants a non-null key pointer even for an empty key.
    static const unsigned char empty_key = 0;
    const void *key = secret.empty() ? static_cast<const void *>(&empty_key) : static_cast<const void *>(secret.data());
    if (HMAC(EVP_sha256(), key, static_cast<int>(secret.size()), reinterpret_cast<const unsigned char *>(body.data()), body.size(), md,
             &len) == nullptr)
        return {};
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "sha256=";
    for (unsigned i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

Result<WebhookHook> parse_webhook_hook(const nlohmann::json &json) {
    const auto bad = [](std::string_view field, std::string_view what) {
        return fail(Errc::invalid_argument, fmt::format("webhook: '{}' {}", field, what));
    };
    if (!json.is_object()) return fail(Errc::invalid_argument, "webhook: expected a JSON object");
    WebhookHook h;
    if (auto it = json.find("id"); it != json.end() && !it->is_null()) {
        if (!it->is_string()) return bad("id", "must be a string");
        h.id = it->get<std::string>();
    }
    auto url = json.find("url");
    if (url == json.end() || !url->is_string()) return bad("url", "is required (a string)");
    h.url = url->get<std::string>();
    if (!webhook_is_http_url(h.url)) return bad("url", fmt::format("must be an http:// or https:// URL, not {}", redact_webhook_url(h.url)));
    if (auto it = json.find("events"); it != json.end() && !it->is_null()) {
        if (!it->is_array()) return bad("events", "must be an array of event names");
        for (const auto &ev : *it) {
            if (!ev.is_string() || !webhook_valid_event(ev.get_ref<const std::string &>())) return bad("events", "must be an array of event names");
            h.events.push_back(normalize_webhook_event(ev.get_ref<const std::string &>()));
        }
    }
    if (auto it = json.find("headers"); it != json.end() && !it->is_null()) {
        if (!it->is_object()) return bad("headers", "must be an object of strings");
        for (const auto &[name, value] : it->items()) {
            if (!value.is_string()) return bad("headers", fmt::format("value of '{}' must be a string", name));
            if (auto problem = webhook_header_problem(name, value.get_ref<const std::string &>()); !problem.empty())
                return bad("headers", fmt::format("'{}' {}", name, problem));
            h.headers[name] = value.get<std::string>();
        }
    }
    if (auto it = json.find("enabled"); it != json.end() && !it->is_null()) {
        if (!it->is_boolean()) return bad("enabled", "must be true or false");
        h.enabled = it->get<bool>();
    }
    if (auto it = json.find("secret"); it != json.end() && !it->is_null()) {
        if (!it->is_string()) return bad("secret", "must be a string");
        h.secret = it->get<std::string>();
    }
    if (auto it = json.find("timeout_seconds"); it != json.end() && !it->is_null()) {
        if (!it->is_number()) return bad("timeout_seconds", "must be a number");
        // Fractions round up: a timeout must never become shorter than asked for.
        const double t = std::ceil(it->get<double>());
        if (!(t >= 1 && t <= webhook_max_timeout_seconds)) return bad("timeout_seconds", fmt::format("must be between 1 and {}", webhook_max_timeout_seconds));
        h.timeout_seconds = static_cast<int>(t);
    }
    if (auto it = json.find("max_retries"); it != json.end() && !it->is_null()) {
        if (!it->is_number_integer() || it->get<std::int64_t>() < 0 || it->get<std::int64_t>() > webhook_max_retries_limit)
            return bad("max_retries", fmt::format("must be an integer between 0 and {}", webhook_max_retries_limit));
        h.max_retries = static_cast<int>(it->get<std::int64_t>());
    }
    return h;
}

// ---- the sender ----------------------------------------------------------------------------------

struct WebhookSender::State {
    WebhookOptions options;
    CURLM *multi = nullptr;  // lives until the State does, so curl_multi_wakeup is always safe

    mutable std::mutex mutex;  // everything below up to `thread`
    std::string secret;
    std::map<std::string, WebhookEntry> hooks;
    std::map<std::string, WebhookQueue> queues;  // same keys as hooks; erased when empty
    std::string last_started;                    // round robin over hooks when transfers are capped
    std::uint64_t next_seq = 0;
    std::size_t waiting = 0;    // deliveries queued and not in flight
    std::size_t in_flight = 0;
    bool stopping = false;
    WebhookClock::time_point deadline{};
    WebhookStats counters;      // .pending unused: computed by stats()
    std::uint64_t drops_unlogged = 0;
    std::optional<WebhookClock::time_point> last_drop_log;

    std::mutex join_mutex;  // two threads calling stop() at once must not both join
    std::thread thread;
    std::mt19937_64 rng{std::random_device{}()};  // sender thread only

    // Replaces the newest waiting job.progress of the same job in place: the receiver only needs the
    // latest figure, and keeping the old position keeps progress ahead of the job's later events.
    static bool coalesce(WebhookQueue &q, const std::string &job_key, const std::shared_ptr<const std::string> &body) {
        for (std::size_t i = q.items.size(); i-- > (q.in_flight ? 1u : 0u);) {
            auto &d = q.items[i];
            if (d.event == "job.progress" && d.job_key == job_key) {
                d.body = body;
                return true;
            }
        }
        return false;
    }

    // Drops the oldest waiting deliveries beyond max_pending; logs at most every 10 s so a flood of
    // events cannot flood the log as well. Called with the mutex held.
    void enforce_bound(WebhookNotes &notes) {
        const std::size_t limit = std::max<std::size_t>(options.max_pending, 1);
        while (waiting > limit) {
            auto oldest = queues.end();
            for (auto it = queues.begin(); it != queues.end(); ++it) {
                const std::size_t first = it->second.in_flight ? 1 : 0;
                if (it->second.items.size() <= first) continue;
                if (oldest == queues.end() || it->second.items[first].seq < oldest->second.items[oldest->second.in_flight ? 1 : 0].seq)
                    oldest = it;
            }
            if (oldest == queues.end()) break;
            auto &q = oldest->second;
            q.items.erase(q.items.begin() + (q.in_flight ? 1 : 0));
            if (q.items.empty() && !q.in_flight) queues.erase(oldest);
            --waiting;
            ++counters.dropped;
            ++drops_unlogged;
        }
        const auto now = WebhookClock::now();
        if (drops_unlogged > 0 && (!last_drop_log || now - *last_drop_log >= std::chrono::seconds(10))) {
            notes.emplace_back(LogLevel::warn, fmt::format("webhooks: more than {} deliveries waiting; dropped the {} oldest", limit, drops_unlogged));
            drops_unlogged = 0;
            last_drop_log = now;
        }
    }

    std::chrono::milliseconds backoff(int retry) {
        const double base = static_cast<double>(std::max<std::int64_t>(options.backoff_base.count(), 0));
        const double cap = static_cast<double>(std::max<std::int64_t>(options.backoff_cap.count(), 0));
        const double d = std::min(cap, base * std::ldexp(1.0, std::clamp(retry - 1, 0, 40)));
        if (d <= 0) return std::chrono::milliseconds(0);
        // Upper half of the interval: hooks failing together spread out, yet never retry sooner than d/2.
        std::uniform_real_distribution<double> pick(d / 2, d);
        return std::chrono::milliseconds(std::llround(pick(rng)));
    }

    // Is anything due by the deadline? With nothing in flight only queue fronts matter.
    bool due_by(WebhookClock::time_point limit) const {
        return std::any_of(queues.begin(), queues.end(), [&](const auto &kv) {
            return !kv.second.in_flight && !kv.second.items.empty() && kv.second.items.front().due <= limit;
        });
    }

    // Marks due deliveries in flight (at most one per hook, max_concurrent in all) and returns how
    // long the thread may sleep if nothing else happens. Mutex held.
    std::chrono::milliseconds pick(WebhookClock::time_point now, std::size_t active, std::vector<WebhookStart> &starts) {
        std::size_t slots = options.max_concurrent > active ? options.max_concurrent - active : 0;
        auto wake = now + std::chrono::seconds(1);
        if (stopping) wake = std::min(wake, deadline);
        auto it = queues.upper_bound(last_started);
        for (std::size_t n = 0, total = queues.size(); n < total; ++n, ++it) {
            if (it == queues.end()) it = queues.begin();
            auto &[key, q] = *it;
            if (q.in_flight || q.items.empty()) continue;
            auto &d = q.items.front();
            if (d.due > now) {
                wake = std::min(wake, d.due);
                continue;
            }
            if (slots == 0) continue;  // a finishing transfer wakes the loop
            const auto hook = hooks.find(key);
            if (hook == hooks.end() || !hook->second.hook.enabled) continue;  // set_hooks purges these
            q.in_flight = true;
            --waiting;
            ++in_flight;
            --slots;
            last_started = key;
            if (d.attempts > 0) ++counters.retried;
            starts.push_back(WebhookStart{hook->second, hook->second.hook.secret.value_or(secret), d.event, d.body});
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
        return std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(1000));
    }

    // Books the end of the front delivery of hook `key`: delivered, retried later, or given up.
    void complete(const std::string &key, bool ok, const std::string &reason, WebhookNotes &notes) {
        std::lock_guard lock(mutex);
        const auto qit = queues.find(key);
        if (qit == queues.end() || !qit->second.in_flight) return;
        auto &q = qit->second;
        q.in_flight = false;
        --in_flight;
        auto &d = q.items.front();
        ++d.attempts;
        const auto hook = hooks.find(key);
        const bool alive = hook != hooks.end() && hook->second.hook.enabled;
        const std::string label = alive ? hook->second.label : redact_webhook_url(key);
        if (ok) {
            ++counters.delivered;
            if (log_enabled(LogLevel::debug))
                notes.emplace_back(LogLevel::debug, fmt::format("webhook {}: {} delivered ({}, attempt {})", label, d.event, reason, d.attempts));
            q.items.pop_front();
        } else if (!alive) {
            // The hook was removed or disabled while this attempt ran: its deliveries are unwanted now.
            ++counters.dropped;
            q.items.pop_front();
        } else if (d.attempts > std::clamp(hook->second.hook.max_retries, 0, webhook_max_retries_limit)) {
            ++counters.failed;
            notes.emplace_back(LogLevel::warn,
                               fmt::format("webhook {}: gave up on {} after {} attempts: {}", label, d.event, d.attempts, reason));
            q.items.pop_front();
        } else {
            const auto delay = backoff(d.attempts);
            d.due = WebhookClock::now() + delay;
            ++waiting;
            if (log_enabled(LogLevel::debug))
                notes.emplace_back(LogLevel::debug, fmt::format("webhook {}: {} attempt {} failed ({}); retrying in {} ms", label, d.event,
                                                                d.attempts, reason, delay.count()));
        }
        if (q.items.empty()) queues.erase(qit);
    }

    void run() noexcept {
        std::map<CURL *, std::unique_ptr<WebhookAttempt>> active;
        for (;;) {
            WebhookNotes notes;
            bool done = false;
            auto wait = std::chrono::milliseconds(1000);
            try {
                std::vector<WebhookStart> starts;
                {
                    std::lock_guard lock(mutex);
                    const auto now = WebhookClock::now();
                    // Leave once the grace period is over, or earlier when nothing can finish within it.
                    if (stopping && (now >= deadline || (active.empty() && !due_by(deadline)))) done = true;
                    else wait = pick(now, active.size(), starts);
                }
                if (done) break;
                for (auto &s : starts) {
                    const std::string key = webhook_key(s.entry.hook);
                    auto a = webhook_make_attempt(s.entry, s.secret, s.event, std::move(s.body), options.ca_file);
                    CURL *e = a ? a->easy : nullptr;
                    if (e == nullptr || curl_multi_add_handle(multi, e) != CURLM_OK) {
                        complete(key, false, "could not start the transfer (out of memory)", notes);
                        wait = std::chrono::milliseconds(0);
                        continue;
                    }
                    active.emplace(e, std::move(a));
                }
                int running = 0;
                curl_multi_perform(multi, &running);
                int left = 0;
                while (CURLMsg *m = curl_multi_info_read(multi, &left)) {
                    if (m->msg != CURLMSG_DONE) continue;
                    CURL *e = m->easy_handle;
                    const CURLcode code = m->data.result;
                    const auto it = active.find(e);
                    if (it == active.end()) continue;
                    std::unique_ptr<WebhookAttempt> a = std::move(it->second);
                    active.erase(it);
                    curl_multi_remove_handle(multi, e);
                    long status = 0;
                    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
                    const bool ok = code == CURLE_OK && status >= 200 && status < 300;
                    // curl_easy_strerror, not the error buffer: the buffer may quote the URL.
                    const std::string reason = code != CURLE_OK ? std::string(curl_easy_strerror(code)) : fmt::format("HTTP {}", status);
                    complete(a->key, ok, reason, notes);
                    wait = std::chrono::milliseconds(0);  // a retry or the hook's next event may be due now
                }
            } catch (const std::exception &ex) {
                notes.emplace_back(LogLevel::error, fmt::format("webhooks: sender error: {}", ex.what()));
            } catch (...) {
                notes.emplace_back(LogLevel::error, "webhooks: sender error");
            }
            webhook_log(notes);
            curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait.count()), nullptr);
        }

        // Past the grace period: cut off what is still in flight, drop what never started.
        const std::size_t cut = active.size();
        for (auto &[e, a] : active) curl_multi_remove_handle(multi, e);
        active.clear();
        std::size_t unfinished = 0;
        {
            std::lock_guard lock(mutex);
            unfinished = waiting + in_flight;
            counters.dropped += unfinished;
            queues.clear();
            waiting = 0;
            in_flight = 0;
        }
        if (unfinished > 0)
            webhook_log({{LogLevel::warn, fmt::format("webhooks: stopped with {} deliveries unfinished ({} cut off in flight)", unfinished, cut)}});
    }
};

WebhookSender::WebhookSender(WebhookOptions options) : state_(std::make_unique<State>()) {
    webhook_curl_init();
    state_->options = std::move(options);
    state_->secret = state_->options.secret;
    state_->multi = curl_multi_init();
    if (state_->multi == nullptr) throw std::bad_alloc();
    state_->thread = std::thread([s = state_.get()] { s->run(); });
}

WebhookSender::~WebhookSender() {
    stop();
    curl_multi_cleanup(state_->multi);
}

void WebhookSender::set_hooks(std::vector<WebhookHook> hooks) {
    State &s = *state_;
    WebhookNotes notes;
    std::map<std::string, WebhookEntry> next;
    for (auto &h : hooks) {
        std::string key = webhook_key(h);
        WebhookEntry entry = webhook_entry(std::move(h), notes);
        if (next.count(key) != 0) {
            notes.emplace_back(LogLevel::warn, fmt::format("webhook {}: listed twice; only the first one is used", entry.label));
            continue;
        }
        next.emplace(std::move(key), std::move(entry));
    }
    {
        std::lock_guard lock(s.mutex);
        s.hooks = std::move(next);
        for (auto it = s.queues.begin(); it != s.queues.end();) {
            const auto hook = s.hooks.find(it->first);
            auto &q = it->second;
            if (hook == s.hooks.end() || !hook->second.hook.enabled) {
                // The one in flight ends on its own; complete() sees the hook gone and drops it.
                const std::size_t keep = q.in_flight ? 1 : 0;
                const std::size_t gone = q.items.size() - keep;
                q.items.resize(keep);
                s.waiting -= gone;
                s.counters.dropped += gone;
            }
            if (q.items.empty()) it = s.queues.erase(it);
            else ++it;
        }
    }
    curl_multi_wakeup(s.multi);
    webhook_log(notes);
}

void WebhookSender::set_secret(std::string secret) {
    std::lock_guard lock(state_->mutex);
    state_->secret = std::move(secret);
}

void WebhookSender::emit(std::string event, nlohmann::json data) {
    State &s = *state_;
    WebhookNotes notes;
    try {
        event = normalize_webhook_event(event);
        if (!webhook_valid_event(event)) {
            webhook_log({{LogLevel::warn, "webhooks: event with an invalid name not sent"}});
            return;
        }
        std::string job_key;
        if (event == "job.progress" && data.is_object())
            if (const auto it = data.find("job_id"); it != data.end()) job_key = it->is_string() ? it->get<std::string>() : it->dump();
        // Serialised once, outside the lock: every hook gets the same bytes.
        auto body = std::make_shared<const std::string>(webhook_body(event, data));
        bool queued = false;
        {
            std::lock_guard lock(s.mutex);
            for (const auto &[key, entry] : s.hooks) {
                if (!entry.hook.enabled || !webhook_wants(entry.hook, event)) continue;
                if (s.stopping) {
                    ++s.counters.dropped;
                    continue;
                }
                auto &q = s.queues[key];
                if (!job_key.empty() && State::coalesce(q, job_key, body)) continue;
                q.items.push_back(WebhookDelivery{s.next_seq++, event, job_key, body, 0, WebhookClock::time_point{}});
                ++s.waiting;
                queued = true;
            }
            s.enforce_bound(notes);
        }
        if (queued) curl_multi_wakeup(s.multi);
    } catch (const std::exception &ex) {
        notes.emplace_back(LogLevel::error, fmt::format("webhooks: {} not queued: {}", event, ex.what()));
    } catch (...) {
        notes.emplace_back(LogLevel::error, fmt::format("webhooks: {} not queued", event));
    }
    webhook_log(notes);
}

Result<nlohmann::json> WebhookSender::test(const WebhookHook &hook) {
    State &s = *state_;
    const std::string redacted = redact_webhook_url(hook.url);
    if (!webhook_is_http_url(hook.url))
        return fail(Errc::invalid_argument, fmt::format("webhook test: {} is not an http:// or https:// URL", redacted));
    std::string secret;
    {
        std::lock_guard lock(s.mutex);
        secret = hook.secret.value_or(s.secret);
    }
    WebhookNotes notes;
    const WebhookEntry entry = webhook_entry(hook, notes);
    webhook_log(notes);
    const nlohmann::json data = {{"message", "test event from hypersdk"}, {"webhook_id", hook.id}};
    auto a = webhook_make_attempt(entry, secret, "test", std::make_shared<const std::string>(webhook_body("test", data)), s.options.ca_file);
    if (!a) return fail(Errc::no_memory, fmt::format("webhook test to {}: could not start the transfer", redacted));
    const auto started = WebhookClock::now();
    const CURLcode code = curl_easy_perform(a->easy);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(WebhookClock::now() - started).count();
    if (code != CURLE_OK) return fail(io::http::curl_errc(code), fmt::format("webhook test to {}: {}", redacted, curl_easy_strerror(code)));
    long status = 0;
    curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &status);
    return nlohmann::json{{"url", redacted}, {"status_code", status}, {"success", status >= 200 && status < 300}, {"duration_ms", ms}};
}

WebhookStats WebhookSender::stats() const {
    std::lock_guard lock(state_->mutex);
    WebhookStats out = state_->counters;
    out.pending = state_->waiting + state_->in_flight;
    return out;
}

void WebhookSender::stop() {
    State &s = *state_;
    std::lock_guard join(s.join_mutex);
    {
        std::lock_guard lock(s.mutex);
        if (!s.stopping) {
            s.stopping = true;
            s.deadline = WebhookClock::now() + s.options.shutdown_grace;
        }
    }
    curl_multi_wakeup(s.multi);
    if (s.thread.joinable()) s.thread.join();
}

}  // namespace hypersdk::service
