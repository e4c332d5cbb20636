// The webhook sender against a real HTTP receiver on 127.0.0.1 (Boost.Beast, synchronous, one thread
// per connection so a receiver that hangs on one request still takes the next).
#include "service/webhooks.hpp"

#include <hypersdk/log.hpp>
#include <hypersdk/version.hpp>

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

using namespace hypersdk;
// Names, not the namespace: in a unity batch a using-directive would reach the files after this one.
using hypersdk::service::normalize_webhook_event;
using hypersdk::service::parse_webhook_hook;
using hypersdk::service::redact_webhook_url;
using hypersdk::service::webhook_signature;
using hypersdk::service::WebhookHook;
using hypersdk::service::WebhookOptions;
using hypersdk::service::WebhookSender;
using namespace std::chrono_literals;

namespace {

struct WebhookTestRequest {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;

    std::string header(const std::string &name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
    nlohmann::json json() const { return nlohmann::json::parse(body); }
};

class WebhookTestReceiver {
public:
    // Returns the status to answer with; may call hang() first.
    using Handler = std::function<unsigned(const WebhookTestRequest &, std::size_t index, WebhookTestReceiver &)>;

    explicit WebhookTestReceiver(Handler handler)
        : handler_(std::move(handler)), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
        port_ = acceptor_.local_endpoint().port();
        accept_thread_ = std::thread([this] { accept_loop(); });
    }

    ~WebhookTestReceiver() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            released_ = true;
        }
        cv_.notify_all();
        // A synchronous accept() is woken only by a connection: make one.
        {
            boost::system::error_code ec;
            boost::asio::ip::tcp::socket poke(io_);
            poke.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
        }
        accept_thread_.join();
        std::vector<std::thread> connections;
        {
            std::lock_guard lock(mutex_);
            connections.swap(connections_);
        }
        for (auto &t : connections) t.join();
    }

    unsigned short port() const { return port_; }
    std::string url(const std::string &path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

    std::vector<WebhookTestRequest> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    std::size_t count() const {
        std::lock_guard lock(mutex_);
        return requests_.size();
    }
    bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout = 5s) const {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
    }

    // Called by a handler: blocks until release() (or the receiver's end), at most `limit`.
    void hang(std::chrono::milliseconds limit) {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, limit, [&] { return released_; });
    }
    void release() {
        {
            std::lock_guard lock(mutex_);
            released_ = true;
        }
        cv_.notify_all();
    }

private:
    void accept_loop() {
        for (;;) {
            boost::asio::ip::tcp::socket socket(io_);
            boost::system::error_code ec;
            acceptor_.accept(socket, ec);
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            if (ec) continue;
            connections_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
        }
    }

    void serve(boost::asio::ip::tcp::socket socket) {
        namespace http = boost::beast::http;
        boost::beast::error_code ec;
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> req;
        http::read(socket, buffer, req, ec);
        if (ec) return;
        WebhookTestRequest r;
        r.method = std::string(req.method_string());
        r.target = std::string(req.target());
        for (const auto &field : req) {
            std::string name(field.name_string());
            for (char &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            r.headers[name] = std::string(field.value());
        }
        r.body = req.body();
        std::size_t index = 0;
        {
            std::lock_guard lock(mutex_);
            index = requests_.size();
            requests_.push_back(r);
        }
        cv_.notify_all();
        const unsigned status = handler_(r, index, *this);
        http::response<http::string_body> res{static_cast<http::status>(status), req.version()};
        res.set(http::field::content_type, "text/plain");
        res.body() = "ok";
        res.keep_alive(false);  // one request per connection keeps the receiver trivially simple
        res.prepare_payload();
        http::write(socket, res, ec);  // fails harmlessly when the sender already gave up on us
        socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }

    Handler handler_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    unsigned short port_ = 0;
    std::thread accept_thread_;
    mutable std::mutex mutex_;
    mutable std::condition_variable cv_;
    std::vector<WebhookTestRequest> requests_;
    std::vector<std::thread> connections_;
    bool released_ = false;
    bool stopping_ = false;
};

unsigned webhook_test_ok(const WebhookTestRequest &, std::size_t, WebhookTestReceiver &) { return 200; }

// Captures every log line of the library while alive (declare it before the sender so it outlives it).
struct WebhookTestLog {
    std::mutex mutex;
    std::vector<std::string> lines;
    WebhookTestLog() {
        set_log_sink(
            [this](LogLevel level, std::string_view message) {
                std::lock_guard lock(mutex);
                lines.push_back(std::string(log_level_name(level)) + ": " + std::string(message));
            },
            LogLevel::debug);
    }
    ~WebhookTestLog() { set_log_sink({}); }
    std::string all() {
        std::lock_guard lock(mutex);
        std::string out;
        for (const auto &l : lines) out += l + "\n";
        return out;
    }
};

std::string webhook_test_hmac_hex(const std::string &key, const std::string &body) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char *>(body.data()), body.size(), md, &len);
    std::string hex;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < len; ++i) {
        hex += digits[md[i] >> 4];
        hex += digits[md[i] & 0xf];
    }
    return hex;
}

// Polls a condition: the sender books a delivery a moment after the receiver has seen it.
template <class Pred>
bool webhook_test_wait(Pred pred, std::chrono::milliseconds timeout = 5s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

WebhookOptions webhook_test_options() {
    // A proxy from the environment would take the loopback requests away from our receiver. Unset
    // before the sender of this case starts its thread, so nothing reads the environment meanwhile.
    for (const char *name : {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) ::unsetenv(name);
    WebhookOptions o;
    o.secret = "global-secret";
    o.backoff_base = 10ms;  // retries in milliseconds, not seconds, keep the suite fast
    o.backoff_cap = 40ms;
    o.shutdown_grace = 300ms;
    return o;
}

WebhookHook webhook_test_hook(const std::string &id, const std::string &url) {
    WebhookHook h;
    h.id = id;
    h.url = url;
    return h;
}

std::int64_t webhook_test_unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("webhook deliveries are signed and carry event, timestamp and the hook's headers") {
    WebhookTestLog logs;
    WebhookTestReceiver receiver(webhook_test_ok);
    WebhookSender sender(webhook_test_options());
    auto one = webhook_test_hook("one", receiver.url("/one"));
    one.headers["Authorization"] = "Bearer hook-token-123";
    one.headers["X-Custom"] = "yes";
    auto two = webhook_test_hook("two", receiver.url("/two"));
    two.secret = "hook-secret";
    sender.set_hooks({one, two});

    const auto before = webhook_test_unix_now();
    sender.emit("job.completed", {{"job_id", "j1"}, {"job_name", "vm one"}, {"vm_path", "/dc/vm/one"}});
    REQUIRE(receiver.wait_for_requests(2));
    const auto after = webhook_test_unix_now();
    REQUIRE(webhook_test_wait([&] { return sender.stats().delivered == 2 && sender.stats().pending == 0; }));

    for (const auto &r : receiver.requests()) {
        CAPTURE(r.target);
        CHECK(r.method == "POST");
        CHECK(r.header("content-type") == "application/json");
        CHECK(r.header("user-agent") == "hypersdk/" + std::string(version()));
        CHECK(r.header("x-hypersdk-event") == "job.completed");
        const auto ts = std::stoll(r.header("x-hypersdk-timestamp"));
        CHECK(ts >= before);
        CHECK(ts <= after);
        const std::string key = r.target == "/two" ? "hook-secret" : "global-secret";
        CHECK(r.header("x-hypersdk-signature") == "sha256=" + webhook_test_hmac_hex(key, r.body));
        CHECK(r.header("x-hypersdk-signature") == webhook_signature(key, r.body));
        const auto body = r.json();
        CHECK(body["event"] == "job.completed");
        CHECK(std::regex_match(body["timestamp"].get<std::string>(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
        CHECK(body["data"]["job_id"] == "j1");
        CHECK(body["data"]["job_name"] == "vm one");
        CHECK(body["data"]["vm_path"] == "/dc/vm/one");
        if (r.target == "/one") {
            CHECK(r.header("authorization") == "Bearer hook-token-123");
            CHECK(r.header("x-custom") == "yes");
        } else {
            CHECK(r.header("authorization").empty());
        }
    }
    sender.stop();
    const std::string log_text = logs.all();
    CHECK(log_text.find("delivered") != std::string::npos);
    CHECK(log_text.find("hook-token-123") == std::string::npos);
    CHECK(log_text.find("secret") == std::string::npos);
}

TEST_CASE("a hook gets only the events it asks for, legacy names included, in order") {
    WebhookTestReceiver receiver(webhook_test_ok);
    WebhookSender sender(webhook_test_options());
    auto all = webhook_test_hook("all", receiver.url("/all"));
    auto completed = webhook_test_hook("completed", receiver.url("/completed"));
    completed.events = {"job.completed"};
    auto legacy = webhook_test_hook("legacy", receiver.url("/legacy"));
    legacy.events = {"job_failed", "job_cancelled"};
    auto disabled = webhook_test_hook("disabled", receiver.url("/disabled"));
    disabled.enabled = false;
    sender.set_hooks({all, completed, legacy, disabled});

    for (const char *ev : {"job.created", "job.started", "job_completed", "job.failed", "job.cancelled"}) sender.emit(ev, {{"job_id", "j"}});
    REQUIRE(webhook_test_wait([&] { return sender.stats().delivered == 8 && sender.stats().pending == 0; }));

    std::map<std::string, std::vector<std::string>> seen;
    for (const auto &r : receiver.requests()) {
        CHECK(r.json()["event"] == r.header("x-hypersdk-event"));
        seen[r.target].push_back(r.header("x-hypersdk-event"));
    }
    CHECK(seen["/all"] == std::vector<std::string>{"job.created", "job.started", "job.completed", "job.failed", "job.cancelled"});
    CHECK(seen["/completed"] == std::vector<std::string>{"job.completed"});
    CHECK(seen["/legacy"] == std::vector<std::string>{"job.failed", "job.cancelled"});
    CHECK(seen.count("/disabled") == 0);
}

TEST_CASE("a failed attempt is retried until the receiver answers 2xx") {
    WebhookTestReceiver receiver([](const WebhookTestRequest &, std::size_t index, WebhookTestReceiver &) { return index < 2 ? 500u : 200u; });
    WebhookSender sender(webhook_test_options());
    sender.set_hooks({webhook_test_hook("h", receiver.url("/hook"))});
    sender.emit("job.started", {{"job_id", "j"}});
    REQUIRE(webhook_test_wait([&] { return sender.stats().delivered == 1; }));
    const auto st = sender.stats();
    CHECK(st.retried == 2);
    CHECK(st.failed == 0);
    CHECK(st.pending == 0);
    const auto reqs = receiver.requests();
    REQUIRE(reqs.size() == 3);
    // Every attempt sends the same bytes, so a receiver can deduplicate on them.
    CHECK(reqs[1].body == reqs[0].body);
    CHECK(reqs[2].body == reqs[0].body);
    CHECK(reqs[2].header("x-hypersdk-signature") == reqs[0].header("x-hypersdk-signature"));
}

TEST_CASE("a delivery is given up after max_retries; the log names the URL without credentials") {
    WebhookTestLog logs;
    WebhookTestReceiver receiver([](const WebhookTestRequest &, std::size_t, WebhookTestReceiver &) { return 503u; });
    WebhookSender sender(webhook_test_options());
    auto h = webhook_test_hook("h", "http://user:pa55word@127.0.0.1:" + std::to_string(receiver.port()) + "/hook?token=abc123");
    h.max_retries = 2;
    sender.set_hooks({h});
    sender.emit("job.failed", {{"job_id", "j"}});
    REQUIRE(webhook_test_wait([&] { return sender.stats().failed == 1; }));
    const auto st = sender.stats();
    CHECK(st.retried == 2);
    CHECK(st.delivered == 0);
    CHECK(st.pending == 0);
    CHECK(receiver.count() == 3);
    sender.stop();
    const std::string log_text = logs.all();
    CAPTURE(log_text);
    CHECK(log_text.find("gave up on job.failed after 3 attempts: HTTP 503") != std::string::npos);
    CHECK(log_text.find("http://127.0.0.1:" + std::to_string(receiver.port()) + "/hook") != std::string::npos);
    CHECK(log_text.find("abc123") == std::string::npos);
    CHECK(log_text.find("pa55word") == std::string::npos);
}

TEST_CASE("each attempt has its own timeout") {
    WebhookTestLog logs;
    WebhookTestReceiver receiver([](const WebhookTestRequest &, std::size_t, WebhookTestReceiver &r) {
        r.hang(8s);
        return 200u;
    });
    WebhookSender sender(webhook_test_options());
    auto h = webhook_test_hook("slow", receiver.url("/slow"));
    h.timeout_seconds = 1;
    h.max_retries = 1;
    sender.set_hooks({h});
    sender.emit("job.completed", {{"job_id", "j"}});
    // Two 1 s attempts; without the per-attempt timeout the first alone would hang 8 s.
    REQUIRE(webhook_test_wait([&] { return sender.stats().failed == 1; }, 6s));
    CHECK(receiver.count() == 2);
    CHECK(sender.stats().retried == 1);
    sender.stop();
    CHECK(logs.all().find("Timeout") != std::string::npos);
}

TEST_CASE("emit() returns at once while the receiver hangs; stop() ends after the grace period") {
    WebhookTestLog logs;
    WebhookTestReceiver receiver([](const WebhookTestRequest &, std::size_t, WebhookTestReceiver &r) {
        r.hang(5s);
        return 200u;
    });
    WebhookSender sender(webhook_test_options());  // grace 300 ms; the hook's timeout stays 10 s
    sender.set_hooks({webhook_test_hook("h", receiver.url("/hang"))});

    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) sender.emit("job.created", {{"job_id", std::to_string(i)}});
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    REQUIRE(receiver.wait_for_requests(1));

    const auto t1 = std::chrono::steady_clock::now();
    sender.stop();
    CHECK(std::chrono::steady_clock::now() - t1 < 3s);
    auto st = sender.stats();
    CHECK(st.delivered == 0);
    CHECK(st.dropped == 200);  // one cut off in flight, 199 never started
    CHECK(st.pending == 0);
    sender.emit("job.created", {{"job_id", "late"}});
    sender.stop();  // idempotent
    CHECK(sender.stats().dropped == 201);
    CHECK(sender.stats().pending == 0);
    CHECK(receiver.count() == 1);
    CHECK(logs.all().find("stopped with 200 deliveries unfinished (1 cut off in flight)") != std::string::npos);
}

TEST_CASE("waiting job.progress events are coalesced per job") {
    WebhookTestReceiver receiver([](const WebhookTestRequest &, std::size_t index, WebhookTestReceiver &r) {
        if (index == 0) r.hang(5s);
        return 200u;
    });
    WebhookSender sender(webhook_test_options());
    sender.set_hooks({webhook_test_hook("h", receiver.url("/p"))});
    sender.emit("job.started", {{"job_id", "a"}});
    REQUIRE(receiver.wait_for_requests(1));  // the hook is busy: everything below waits
    for (int i = 0; i < 50; ++i) {
        sender.emit("job.progress", {{"job_id", "a"}, {"percent", i}});
        sender.emit("job.progress", {{"job_id", "b"}, {"percent", i * 2}});
    }
    sender.emit("job.completed", {{"job_id", "a"}});
    CHECK(sender.stats().pending == 4);  // the one in flight, a's progress, b's progress, a's completion
    receiver.release();
    REQUIRE(webhook_test_wait([&] { return sender.stats().delivered == 4 && sender.stats().pending == 0; }));

    const auto reqs = receiver.requests();
    REQUIRE(reqs.size() == 4);
    CHECK(reqs[0].json()["event"] == "job.started");
    CHECK(reqs[1].json()["event"] == "job.progress");
    CHECK(reqs[1].json()["data"] == nlohmann::json{{"job_id", "a"}, {"percent", 49}});
    CHECK(reqs[2].json()["event"] == "job.progress");
    CHECK(reqs[2].json()["data"] == nlohmann::json{{"job_id", "b"}, {"percent", 98}});
    CHECK(reqs[3].json()["event"] == "job.completed");
}

TEST_CASE("the queue is bounded: the oldest waiting deliveries are dropped with a warning") {
    WebhookTestLog logs;
    WebhookTestReceiver receiver([](const WebhookTestRequest &, std::size_t index, WebhookTestReceiver &r) {
        if (index == 0) r.hang(5s);
        return 200u;
    });
    auto options = webhook_test_options();
    options.max_pending = 5;
    WebhookSender sender(options);
    sender.set_hooks({webhook_test_hook("h", receiver.url("/q"))});
    sender.emit("job.created", {{"n", 0}});
    REQUIRE(receiver.wait_for_requests(1));
    for (int i = 1; i <= 20; ++i) sender.emit("job.created", {{"n", i}});
    CHECK(sender.stats().dropped == 15);
    CHECK(logs.all().find("more than 5 deliveries waiting; dropped the 1 oldest") != std::string::npos);
    receiver.release();
    REQUIRE(webhook_test_wait([&] { return sender.stats().delivered == 6 && sender.stats().pending == 0; }));
    std::vector<int> ns;
    for (const auto &r : receiver.requests()) ns.push_back(r.json()["data"]["n"].get<int>());
    CHECK(ns == std::vector<int>{0, 16, 17, 18, 19, 20});
}

TEST_CASE("set_hooks() drops the waiting deliveries of a removed hook") {
    WebhookTestReceiver receiver([](const WebhookTestRequest &, std::size_t index, WebhookTestReceiver &r) {
        if (index == 0) r.hang(5s);
        return 200u;
    });
    WebhookSender sender(webhook_test_options());
    sender.set_hooks({webhook_test_hook("h", receiver.url("/r"))});
    for (int i = 0; i < 3; ++i) sender.emit("job.created", {{"n", i}});
    REQUIRE(receiver.wait_for_requests(1));
    sender.set_hooks({});
    CHECK(sender.stats().dropped == 2);
    receiver.release();
    // The attempt in flight still ends; as it succeeded it counts as delivered.
    REQUIRE(webhook_test_wait([&] { return sender.stats().pending == 0; }));
    CHECK(sender.stats().delivered == 1);
    sender.emit("job.created", {{"n", 9}});
    CHECK(sender.stats().pending == 0);
    CHECK(receiver.count() == 1);
}

TEST_CASE("test() reports the receiver's answer, and on failure names the URL without its query") {
    WebhookTestReceiver receiver([](const WebhookTestRequest &r, std::size_t, WebhookTestReceiver &) {
        return r.target.starts_with("/ok") ? 200u : 404u;
    });
    WebhookSender sender(webhook_test_options());

    auto ok = webhook_test_hook("t", receiver.url("/ok?token=abc123"));
    ok.enabled = false;             // test() sends anyway:
    ok.events = {"job.completed"};  // it is an explicit request
    auto r = sender.test(ok);
    REQUIRE(r);
    const auto &j = r.value();
    CHECK(j["url"] == receiver.url("/ok"));
    CHECK(j["status_code"] == 200);
    CHECK(j["success"] == true);
    CHECK(j["duration_ms"].is_number_integer());
    CHECK(j["duration_ms"].get<std::int64_t>() >= 0);
    REQUIRE(receiver.count() == 1);
    const auto req = receiver.requests()[0];
    CHECK(req.target == "/ok?token=abc123");
    CHECK(req.header("x-hypersdk-event") == "test");
    CHECK(req.json()["event"] == "test");
    CHECK(req.json()["data"]["webhook_id"] == "t");
    CHECK(req.header("x-hypersdk-signature") == "sha256=" + webhook_test_hmac_hex("global-secret", req.body));

    auto missing = sender.test(webhook_test_hook("m", receiver.url("/missing")));
    REQUIRE(missing);
    CHECK(missing.value()["status_code"] == 404);
    CHECK(missing.value()["success"] == false);

    // A port nobody listens on: bound, noted, closed again.
    unsigned short closed_port = 0;
    {
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        closed_port = a.local_endpoint().port();
    }
    const std::string closed = "http://127.0.0.1:" + std::to_string(closed_port) + "/x";
    auto refused = sender.test(webhook_test_hook("c", closed + "?token=abc123"));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::network_error);
    CHECK(refused.error().message.find(closed) != std::string::npos);
    CHECK(refused.error().message.find("abc123") == std::string::npos);

    auto ftp = sender.test(webhook_test_hook("f", "ftp://127.0.0.1/x"));
    REQUIRE_FALSE(ftp);
    CHECK(ftp.error().code == Errc::invalid_argument);
    CHECK(sender.stats().delivered == 0);  // test() is not a delivery
}

TEST_CASE("webhook JSON, event names and URL redaction") {
    auto h = parse_webhook_hook({{"id", "w1"},
                                 {"url", "https://example.invalid/hook"},
                                 {"events", {"job_completed", "job.failed"}},
                                 {"headers", {{"Authorization", "Bearer x"}}},
                                 {"secret", "s"}});
    REQUIRE(h);
    CHECK(h.value().id == "w1");
    CHECK(h.value().events == std::vector<std::string>{"job.completed", "job.failed"});
    CHECK(h.value().headers.at("Authorization") == "Bearer x");
    CHECK(h.value().enabled);
    CHECK(h.value().secret == std::optional<std::string>("s"));
    CHECK(h.value().timeout_seconds == 10);
    CHECK(h.value().max_retries == 3);

    auto fractional = parse_webhook_hook({{"url", "http://127.0.0.1/"}, {"timeout_seconds", 1.5}, {"max_retries", 0}, {"enabled", false}});
    REQUIRE(fractional);
    CHECK(fractional.value().timeout_seconds == 2);
    CHECK(fractional.value().max_retries == 0);
    CHECK_FALSE(fractional.value().enabled);
    CHECK_FALSE(fractional.value().secret);

    CHECK_FALSE(parse_webhook_hook({{"id", "x"}}));
    CHECK_FALSE(parse_webhook_hook({{"url", "file:///etc/passwd"}}));
    CHECK_FALSE(parse_webhook_hook({{"url", "http://h/"}, {"headers", {{"X-A", "a\r\nX-B: b"}}}}));
    CHECK_FALSE(parse_webhook_hook({{"url", "http://h/"}, {"headers", {{"X-HyperSDK-Signature", "forged"}}}}));
    CHECK_FALSE(parse_webhook_hook({{"url", "http://h/"}, {"max_retries", -1}}));
    CHECK_FALSE(parse_webhook_hook({{"url", "http://h/"}, {"timeout_seconds", 0}}));
    const auto bad_events = parse_webhook_hook({{"url", "http://h/"}, {"events", "job.completed"}});
    REQUIRE_FALSE(bad_events);
    CHECK(bad_events.error().message.find("events") != std::string::npos);

    CHECK(normalize_webhook_event("job_completed") == "job.completed");
    CHECK(normalize_webhook_event("job.progress") == "job.progress");
    CHECK(normalize_webhook_event("test") == "test");

    CHECK(redact_webhook_url("https://u:p@hooks.example:8443/a/b?token=t#frag") == "https://hooks.example:8443/a/b");
    CHECK(redact_webhook_url("http://127.0.0.1:9/x@y?q=1") == "http://127.0.0.1:9/x@y");
    CHECK(redact_webhook_url("http://u@h") == "http://h");
    CHECK(redact_webhook_url("http://h/p") == "http://h/p");
}
