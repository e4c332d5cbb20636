// HTTP(S) client on libcurl: TLS policy (system CAs, a CA file, a pinned certificate thumbprint
// or an explicit insecure switch), a cookie jar shared by every request of one client (the
// vSphere session cookie), Range downloads streamed into a sink, cancellation that stops a
// transfer within a tenth of a second, and a retry helper with exponential backoff and jitter.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hypersdk::io::http {

// The library's error code for a libcurl result (a CURLcode): timeout, tls_error for certificate and
// handshake failures, invalid_argument for a malformed URL or scheme, network_error otherwise.
Errc curl_errc(int curl_code);


struct TlsOptions {
    bool insecure = false;          // no certificate check at all: only when the caller says so
    std::string ca_file;            // PEM bundle trusted instead of the system store
    std::string thumbprint_sha256;  // pin the server certificate (hex, colons and case ignored)
};

// Normalises a SHA-256 thumbprint to 64 lower-case hex digits; invalid_argument otherwise.
Result<std::string> normalize_thumbprint(std::string_view text);

struct ClientOptions {
    TlsOptions tls;
    std::chrono::seconds connect_timeout{30};
    std::chrono::seconds stall_timeout{60};    // no byte moving for this long -> timeout
    std::chrono::seconds request_timeout{0};   // whole request; 0: no limit (downloads)
    CancelToken cancel;
};

struct Request {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;  // "Name: value"
    std::string body;
    std::uint64_t range_from = 0;      // > 0: ask for bytes range_from.. (Range: bytes=N-)
    std::size_t max_body = 64u << 20;  // buffered responses larger than this fail
};

struct Response {
    long status = 0;
    std::string body;  // buffered requests only
    std::optional<std::uint64_t> content_length;
    std::string content_range;  // as sent, e.g. "bytes 100-199/200"
    std::string content_type;
    std::vector<std::pair<std::string, std::string>> headers;  // every header of the final answer, as sent
    // The value of a header (name compared without case), empty when absent.
    [[nodiscard]] std::string header(std::string_view name) const;
};

// Receives the body of a streamed request in order. An error stops the transfer and is returned.
using BodySink = std::function<Result<void>(std::span<const std::byte>)>;
// Sees the status and headers before the first body byte (may refuse the response).
using HeaderCheck = std::function<Result<void>(const Response &)>;

class Client {
public:
    explicit Client(ClientOptions options);
    ~Client();
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    // Sends a request and buffers the answer. Any HTTP status is a value; transport failures are
    // errors: tls_error, network_error (refused, reset, cut short), timeout, cancelled.
    // Safe to call from several threads at once.
    Result<Response> send(const Request &request);
    // Same, handing the body to `sink` as it arrives instead of buffering it.
    Result<Response> stream(const Request &request, const HeaderCheck &check, const BodySink &sink);

    [[nodiscard]] const ClientOptions &options() const noexcept { return options_; }
    // A client sharing this one's cookies (the session) with other options: other TLS settings
    // for a lease URL naming an ESXi host, or another cancel token for clean-up calls that must
    // run after a cancel.
    [[nodiscard]] std::unique_ptr<Client> derive(ClientOptions options) const;
    // The session cookies as a "Cookie: a=b; c=d" header for another client to send (empty when
    // there are none). A secret: never log it.
    [[nodiscard]] std::string cookie_header() const;

private:
    struct Shared;
    class HandlePool;
    Client(ClientOptions options, std::shared_ptr<Shared> shared);
    Result<Response> perform(const Request &request, const HeaderCheck *check, const BodySink *sink);

    ClientOptions options_;
    std::string thumbprint_;  // normalised pin, empty when none
    std::shared_ptr<Shared> shared_;
    std::shared_ptr<HandlePool> pool_;  // shared by the session's clients of the same TLS settings
};

// Percent-encodes all but RFC 3986's unreserved characters (and '/' when keep_slash).
std::string percent_encode(std::string_view s, bool keep_slash);

// Undoes percent-encoding (and '+' as a space when plus_as_space, as in form bodies); a '%' not
// followed by two hex digits stays as it is.
std::string percent_decode(std::string_view s, bool plus_as_space = false);

// A URL safe for messages: no user info, no query, and NFC ticket paths shortened.
std::string redact_url(std::string_view url);

// "HTTP 503 Service Unavailable from <url>" as remote_error. 5xx answers are transient.
Error status_error(long status, std::string_view method, std::string_view url);

// Failures worth another try: connection refused/reset/cut short, timeouts, HTTP 5xx.
bool is_transient(const Error &error);

struct RetryPolicy {
    unsigned max_attempts = 5;  // including the first; 1 disables retrying
    std::chrono::milliseconds initial_delay{250};
    std::chrono::milliseconds max_delay{8000};
};

// Waits before attempt `attempt` (1 = first retry): exponential backoff with full jitter in
// [delay/2, delay], in short slices so that a cancel ends the wait at once.
Result<void> backoff_sleep(const RetryPolicy &policy, unsigned attempt, const CancelToken &cancel);

// Runs `attempt(n)` until it succeeds, fails for good, or the policy's attempts are spent.
template <class F>
auto with_retries(const RetryPolicy &policy, const CancelToken &cancel, F &&attempt) -> decltype(attempt(0u)) {
    for (unsigned n = 0;; ++n) {
        auto r = attempt(n);
        if (r || !is_transient(r.error()) || n + 1 >= std::max(1u, policy.max_attempts)) return r;
        if (auto slept = backoff_sleep(policy, n + 1, cancel); !slept) return fail(slept.error());
    }
}

}  // namespace hypersdk::io::http
