#include "cloud/rest.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace hypersdk::cloud {
namespace {

namespace http = io::http;
using json = nlohmann::json;

http::RetryPolicy policy(unsigned max_attempts) { return {max_attempts, std::chrono::milliseconds(250), std::chrono::milliseconds(8000)}; }

}  // namespace

std::string form_encode(const std::vector<std::pair<std::string, std::string>> &params) {
    std::string out;
    for (const auto &[k, v] : params) out += (out.empty() ? "" : "&") + http::percent_encode(k, false) + "=" + http::percent_encode(v, false);
    return out;
}

Result<void> sleep_for(std::chrono::milliseconds d, const CancelToken &cancel) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
        HSDK_TRYV(cancel.check());
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    }
    return cancel.check();
}

std::chrono::milliseconds retry_after(const http::Response &r, std::chrono::milliseconds fallback) {
    const std::string v = r.header("Retry-After");
    if (!v.empty() && v.size() < 6 && std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return std::chrono::seconds(std::min(120, std::atoi(v.c_str())));
    return fallback;
}

Result<TokenCache::Token> parse_oauth_token(const http::Response &answer, const std::string &what) {
    auto j = json::parse(answer.body, nullptr, false);
    if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string() || j["access_token"].get_ref<const std::string &>().empty())
        return fail(Errc::remote_error, what + ": the answer holds no access_token");
    TokenCache::Token t;
    t.value = j["access_token"].get<std::string>();
    if (j.contains("expires_in")) {
        long s = 3600;
        if (j["expires_in"].is_number()) s = j["expires_in"].get<long>();
        else if (j["expires_in"].is_string()) s = std::atol(j["expires_in"].get<std::string>().c_str());
        t.lifetime = std::chrono::seconds(std::max(0L, s));
    }
    return t;
}

Result<std::string> TokenCache::get(bool renew) {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (!renew && !value_.empty() && now < expiry_) return value_;
    HSDK_TRY(auto t, fetch_());
    value_ = std::move(t.value);
    // Renewed a while before it expires (a long transfer must not meet an expired token); a
    // token that lives shorter than that margin is used for half its life.
    const auto margin = std::min<std::chrono::seconds>(std::chrono::seconds(300), t.lifetime / 2);
    expiry_ = now + t.lifetime - margin;
    return value_;
}

Result<http::Response> send_with_retries(http::Client &client, const http::Request &request, unsigned max_attempts,
                                         const CancelToken &cancel, const std::string &what) {
    for (unsigned attempt = 0;; ++attempt) {
        auto sent = client.send(request);
        const bool last = attempt + 1 >= std::max(1u, max_attempts);
        if (!sent) {
            if (!http::is_transient(sent.error()) || last) return fail(sent.error().with_context(what));
        } else if ((sent.value().status != 429 && sent.value().status < 500) || last) {
            return sent;
        }
        HSDK_TRYV(http::backoff_sleep(policy(max_attempts), attempt + 1, cancel));
    }
}

http::ClientOptions client_options(const RestSettings &settings, std::chrono::seconds request_timeout) {
    http::ClientOptions o;
    o.tls.insecure = settings.insecure;
    o.tls.ca_file = settings.ca_file;
    o.connect_timeout = settings.timeout;
    o.stall_timeout = settings.timeout;
    o.request_timeout = request_timeout;
    o.cancel = settings.cancel;
    return o;
}

RestClient::RestClient(RestSettings settings, AuthHeaders auth, ErrorMapper errors)
    : settings_(std::move(settings)), auth_(std::move(auth)), errors_(std::move(errors)),
      http_(std::make_unique<http::Client>(client_options(settings_, std::chrono::seconds(300)))) {}

Result<http::Response> RestClient::send(const std::string &method, const std::string &url, const json &body, const std::string &what,
                                        const std::vector<std::string> &extra_headers) {
    bool renewed = false;
    for (unsigned attempt = 0;; ++attempt) {
        http::Request r;
        r.method = method;
        r.url = url;
        HSDK_TRY(r.headers, auth_headers(false));
        r.headers.push_back("Accept: application/json");
        for (const auto &h : extra_headers) r.headers.push_back(h);
        if (!body.is_null()) {
            r.body = body.dump();
            r.headers.push_back("Content-Type: application/json");
        } else if (method == "POST" || method == "PUT" || method == "PATCH") {
            r.headers.push_back("Content-Type: application/json");
        }
        auto sent = http_->send(r);
        const bool last = attempt + 1 >= std::max(1u, settings_.max_attempts);
        if (!sent) {
            if (!http::is_transient(sent.error()) || last) return fail(sent.error().with_context(what));
            HSDK_TRYV(http::backoff_sleep(policy(settings_.max_attempts), attempt + 1, settings_.cancel));
            continue;
        }
        const long status = sent.value().status;
        if (status < 300) return sent;
        if (status == 401 && !renewed && auth_) {  // an expired or revoked token: once more with a new one
            renewed = true;
            HSDK_TRYV(auth_(true));  // renews what the next auth_headers(false) gives
            continue;
        }
        if ((status == 429 || status >= 500) && !last) {
            log(LogLevel::debug, fmt::format("{}: HTTP {}; trying again", what, status));
            HSDK_TRYV(sleep_for(retry_after(sent.value(), std::chrono::milliseconds(500) * (1u << std::min(attempt, 5u))), settings_.cancel));
            continue;
        }
        Error e = errors_ ? errors_(sent.value(), what) : http::status_error(status, method, http::redact_url(url));
        if (status == 429) e.message += fmt::format(" (still throttled after {} tries)", attempt + 1);
        return fail(std::move(e));
    }
}

Result<json> RestClient::call(const std::string &method, const std::string &url, const json &body, const std::string &what,
                              const std::vector<std::string> &extra_headers) {
    HSDK_TRY(auto answer, send(method, url, body, what, extra_headers));
    if (answer.body.empty()) return json(nullptr);
    auto j = json::parse(answer.body, nullptr, false);
    if (j.is_discarded()) return fail(Errc::remote_error, what + ": the answer is not JSON");
    return j;
}

io::StreamReader RestClient::stream_reader(const std::string &url, const std::string &what) {
    auto rest = shared_from_this();
    const unsigned max_attempts = std::max(1u, settings_.max_attempts);
    const CancelToken cancel = settings_.cancel;
    return [rest, url, what, max_attempts, cancel](std::uint64_t offset, const io::StreamSink &sink, const CancelToken &stop) -> Result<void> {
        http::ClientOptions o = rest->http().options();
        o.cancel = stop;
        o.request_timeout = std::chrono::seconds(0);
        // Derived: the stream reuses the connection (and TLS session) the API calls opened.
        const auto client = rest->http().derive(o);
        std::uint64_t pos = offset;
        unsigned failures = 0;
        bool renewed = false;
        for (;;) {
            HSDK_TRYV(cancel.check());
            HSDK_TRYV(stop.check());
            http::Request r;
            r.url = url;
            HSDK_TRY(r.headers, rest->auth_headers(false));
            r.range_from = pos;
            std::uint64_t skip = 0;
            bool error_status = false, sink_failed = false;
            std::string error_body;
            const std::uint64_t before = pos;
            auto check = [&](const http::Response &resp) -> Result<void> {
                if (resp.status == 200 && pos > 0) skip = pos;  // the Range was ignored: skip what arrived before
                else if (resp.status != 200 && resp.status != 206) error_status = true;
                return success();
            };
            auto body = [&](std::span<const std::byte> bytes) -> Result<void> {
                if (error_status) {
                    if (error_body.size() < 65536) error_body.append(reinterpret_cast<const char *>(bytes.data()), bytes.size());
                    return success();
                }
                if (skip > 0) {
                    const std::size_t drop = static_cast<std::size_t>(std::min<std::uint64_t>(skip, bytes.size()));
                    skip -= drop;
                    bytes = bytes.subspan(drop);
                    if (bytes.empty()) return success();
                }
                if (auto fed = sink(bytes); !fed) {
                    sink_failed = true;
                    return fed;
                }
                pos += bytes.size();
                return success();
            };
            auto sent = client->stream(r, check, body);
            if (sink_failed) return fail(std::move(sent).error());
            if (sent && !error_status) return success();
            if (pos > before) failures = 0;
            const bool last = ++failures >= max_attempts;
            if (!sent) {
                if (sent.error().code == Errc::cancelled || !http::is_transient(sent.error()) || last)
                    return fail(sent.error().with_context(what));
                log(LogLevel::debug, fmt::format("{}: {} at byte {}; resuming", what, sent.error().message, pos));
            } else {
                http::Response resp = sent.value();
                resp.body = std::move(error_body);
                if (resp.status == 401 && !renewed) {
                    renewed = true;
                    HSDK_TRYV(rest->auth_headers(true));
                    continue;
                }
                if ((resp.status != 429 && resp.status < 500) || last) return fail(rest->error(resp, what));
            }
            HSDK_TRYV(http::backoff_sleep(http::RetryPolicy{max_attempts, std::chrono::milliseconds(250), std::chrono::milliseconds(8000)},
                                          failures, stop));
        }
    };
}

Error RestClient::error(const http::Response &response, const std::string &what) const {
    return errors_ ? errors_(response, what) : http::status_error(response.status, "GET", what);
}

}  // namespace hypersdk::cloud
