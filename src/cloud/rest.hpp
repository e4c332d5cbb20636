// A JSON REST client for cloud control planes (Azure Resource Manager, Google Cloud, OpenStack):
// credential headers from the caller's token source (renewed once after a 401), retries of
// throttling (429, honouring Retry-After), 5xx and dropped connections with backoff, and the
// platform's error answers turned into error codes by the caller's mapper.
#pragma once

#include "io/http.hpp"
#include "io/tar_stream_source.hpp"

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace hypersdk::cloud {

struct RestSettings {
    unsigned max_attempts = 8;
    std::chrono::seconds timeout{60};  // connect and stall
    bool insecure = false;
    std::string ca_file;
    CancelToken cancel;
};

// The HTTP client options the settings mean (TLS, connect and stall timeouts, cancel).
io::http::ClientOptions client_options(const RestSettings &settings, std::chrono::seconds request_timeout);

// The headers that carry the credential ("Authorization: Bearer ..."). `renew`: the last one was
// refused (401), get a new one. Secrets: never logged.
using AuthHeaders = std::function<Result<std::vector<std::string>>(bool renew)>;
// The platform's error answer as an error naming `what`.
using ErrorMapper = std::function<Error(const io::http::Response &, const std::string &what)>;

class RestClient : public std::enable_shared_from_this<RestClient> {
public:
    RestClient(RestSettings settings, AuthHeaders auth, ErrorMapper errors);

    // A request to `url` with a JSON body (none when null), retried as the header says; answers
    // below 300 are returned, others are errors from the mapper.
    Result<io::http::Response> send(const std::string &method, const std::string &url, const nlohmann::json &body,
                                    const std::string &what, const std::vector<std::string> &extra_headers = {});
    // send(), the answer parsed (null for an empty body).
    Result<nlohmann::json> call(const std::string &method, const std::string &url, const nlohmann::json &body,
                                const std::string &what, const std::vector<std::string> &extra_headers = {});

    // A GET of `url` streamed from an offset on (io::StreamReader): dropped transfers resume with a
    // Range request, a server ignoring the Range has its repeated bytes skipped, a refused token is
    // renewed once. The client must be owned by a shared_ptr.
    io::StreamReader stream_reader(const std::string &url, const std::string &what);
    // The platform's error for an answer.
    [[nodiscard]] Error error(const io::http::Response &response, const std::string &what) const;

    [[nodiscard]] io::http::Client &http() noexcept { return *http_; }
    [[nodiscard]] const RestSettings &settings() const noexcept { return settings_; }
    // The credential headers (for byte sources that read with their own requests).
    Result<std::vector<std::string>> auth_headers(bool renew = false) { return auth_ ? auth_(renew) : std::vector<std::string>{}; }

private:
    RestSettings settings_;
    AuthHeaders auth_;
    ErrorMapper errors_;
    std::unique_ptr<io::http::Client> http_;
};

// A token and when to stop using it, fetched again when it is (nearly) expired or refused.
class TokenCache {
public:
    struct Token {
        std::string value;
        std::chrono::seconds lifetime{3600};
    };
    using Fetch = std::function<Result<Token>()>;
    explicit TokenCache(Fetch fetch) : fetch_(std::move(fetch)) {}
    Result<std::string> get(bool renew);

private:
    Fetch fetch_;
    std::mutex mutex_;
    std::string value_;
    std::chrono::steady_clock::time_point expiry_{};
};

// An OAuth2 token endpoint's answer ({"access_token", "expires_in"}) as a token.
Result<TokenCache::Token> parse_oauth_token(const io::http::Response &answer, const std::string &what);

// Sends an unauthenticated request (a token endpoint), retrying throttling, 5xx and dropped
// connections; other answers are returned as they are.
Result<io::http::Response> send_with_retries(io::http::Client &http, const io::http::Request &request, unsigned max_attempts,
                                             const CancelToken &cancel, const std::string &what);

// application/x-www-form-urlencoded
std::string form_encode(const std::vector<std::pair<std::string, std::string>> &params);

// Waits `d` in short slices so that a cancel ends the wait at once.
Result<void> sleep_for(std::chrono::milliseconds d, const CancelToken &cancel);

// The wait a 429 or 503 asks for (Retry-After in seconds), or `fallback`.
std::chrono::milliseconds retry_after(const io::http::Response &r, std::chrono::milliseconds fallback);

}  // namespace hypersdk::cloud
