// Signed calls to AWS services (EC2's query API, EBS direct's REST/JSON, S3's REST/XML) with
// AWS's error answers turned into error codes, retries with backoff and jitter for throttling,
// 5xx and transport failures (never for refusals: AccessDenied, ValidationException, NotFound),
// a per-request timeout so a stalled connection cannot hang a job, and an adaptive rate limit
// for the account.
#pragma once

#include "cloud/aws/config.hpp"
#include "cloud/token_bucket.hpp"
#include "io/http.hpp"

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace hypersdk::cloud::aws {

struct ClientSettings {
    unsigned max_attempts = 10;  // per call, counting the first; throttling and 5xx are retried
    std::chrono::milliseconds initial_backoff{200};
    std::chrono::milliseconds max_backoff{20000};
    std::chrono::seconds timeout{60};  // connect, and a request moving no byte this long
    std::chrono::seconds request_timeout{300};  // a whole buffered call
    bool insecure = false;  // no TLS certificate check (test endpoints)
    std::string ca_file;
    // Requests per second across every client of one account (access key) and region in this
    // process; the first client sets it. AWS's General Reference lists GetSnapshotBlock at 5,000
    // per account (1,000 per snapshot: EbsSourceOptions::rate). 0: no limit.
    double account_rate = 5000;
    CancelToken cancel;
};

struct Call {
    std::string service;  // ec2, ebs, s3: the signing name and the endpoint
    std::string method = "GET";
    std::string path = "/";                                  // encoded as it goes on the wire
    std::vector<std::pair<std::string, std::string>> query;  // not encoded
    std::string body;
    std::string content_type;
    std::vector<std::string> headers;  // further "Name: value" lines (not signed)
    std::string what;                  // names the call in messages: "GetSnapshotBlock snap-1 block 7"
    std::size_t max_body = 64u << 20;
};

// An AWS error answer: code from the body or x-amzn-ErrorType, the service's message.
struct ServiceFault {
    long status = 0;
    std::string code;
    std::string message;
};

// Reads the error code and message AWS puts in an answer (XML <Code>/<Message> for EC2 and S3,
// JSON Message and x-amzn-ErrorType for REST/JSON services).
ServiceFault parse_fault(const io::http::Response &response);
// The error for it: auth_failed, permission_denied, not_found, invalid_argument, or
// remote_error; `retryable` says whether another try may succeed (throttling, 5xx).
Error fault_error(const ServiceFault &fault, const std::string &what, bool &retryable, bool &throttled);

class Client {
public:
    Client(Config config, ClientSettings settings);

    [[nodiscard]] const Config &config() const noexcept { return config_; }
    [[nodiscard]] const ClientSettings &settings() const noexcept { return settings_; }

    // Signs, sends and retries; a 2xx answer is returned, anything else is an error naming `what`.
    // `bucket` (optional) is the caller's own rate limit (one snapshot's), taken before each try
    // and told about throttling.
    Result<io::http::Response> call(const Call &call, TokenBucket *bucket = nullptr);

    // The signature headers for a request a caller sends itself (an S3 object read through the
    // HTTP byte source): payload not signed.
    [[nodiscard]] std::vector<std::string> sign(const std::string &service, const std::string &method,
                                                const std::string &url) const;
    // The URL of a call (endpoint, path, encoded query).
    [[nodiscard]] std::string url(const Call &call) const;

private:
    Config config_;
    ClientSettings settings_;
    std::unique_ptr<io::http::Client> http_;
    std::shared_ptr<TokenBucket> account_;  // shared by the account's clients
};

// Query-string encoding (RFC 3986, spaces as %20, as SigV4 canonicalises a URL's query), or a
// form body of AWS's query APIs (Action=...&Version=...) with spaces as '+', as HTML forms and
// the SDKs send them (any encoding signs, as the body's hash is signed; some simulators re-encode).
std::string form_encode(const std::vector<std::pair<std::string, std::string>> &params, bool plus_for_space = false);

}  // namespace hypersdk::cloud::aws
