#include "cloud/aws/client.hpp"

#include "xml/xml_tree.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>

namespace hypersdk::cloud::aws {
namespace {

namespace http = io::http;

bool one_of(const std::string &code, std::initializer_list<const char *> names) {
    for (const char *n : names)
        if (code == n) return true;
    return false;
}

bool ends_with(const std::string &s, std::string_view tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::string form_encode(const std::vector<std::pair<std::string, std::string>> &params, bool plus_for_space) {
    auto encode = [&](const std::string &s) {
        std::string e = uri_encode(s, false);
        if (!plus_for_space) return e;
        std::string out;
        for (std::size_t i = 0; i < e.size(); ++i) {
            if (e.compare(i, 3, "%20") == 0) {
                out += '+';
                i += 2;
            } else {
                out += e[i];
            }
        }
        return out;
    };
    std::string out;
    for (const auto &[k, v] : params) out += (out.empty() ? "" : "&") + encode(k) + "=" + encode(v);
    return out;
}

ServiceFault parse_fault(const http::Response &response) {
    ServiceFault f;
    f.status = response.status;
    const std::string &body = response.body;
    const auto first = body.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && body[first] == '<') {
        xml::Limits limits;
        limits.error_code = Errc::remote_error;
        limits.max_bytes = 1u << 20;
        if (auto doc = xml::parse(body, "AWS error answer", limits)) {
            if (const auto *code = doc.value().find_descendant("Code")) f.code = xml::trim(code->text);
            if (const auto *msg = doc.value().find_descendant("Message")) f.message = xml::trim(msg->text);
        }
    } else if (first != std::string::npos && body[first] == '{') {
        auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_object()) {
            for (const char *k : {"Message", "message", "errorMessage"})
                if (j.contains(k) && j[k].is_string()) f.message = j[k].get<std::string>();
            for (const char *k : {"__type", "code", "Code"})
                if (f.code.empty() && j.contains(k) && j[k].is_string()) f.code = j[k].get<std::string>();
            if (j.contains("Reason") && j["Reason"].is_string() && !f.message.empty())
                f.message += fmt::format(" ({})", j["Reason"].get<std::string>());
        }
    }
    if (const std::string t = response.header("x-amzn-ErrorType"); !t.empty()) f.code = t;
    // "ValidationException:http://internal.amazon.com/coral/..." and "com.amazon...#Code" forms.
    if (const auto colon = f.code.find(':'); colon != std::string::npos) f.code.resize(colon);
    if (const auto hash = f.code.rfind('#'); hash != std::string::npos) f.code = f.code.substr(hash + 1);
    return f;
}

Error fault_error(const ServiceFault &f, const std::string &what, bool &retryable, bool &throttled) {
    throttled = one_of(f.code, {"Throttling", "ThrottlingException", "RequestThrottledException", "RequestLimitExceeded",
                                "TooManyRequestsException", "SlowDown", "ProvisionedThroughputExceededException",
                                "RequestThrottled", "BandwidthLimitExceeded"}) ||
                f.status == 429;
    retryable = throttled || f.status >= 500 ||
                one_of(f.code, {"InternalServerException", "InternalError", "InternalFailure", "ServiceUnavailable",
                                "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException", "Unavailable"});
    const std::string said = f.code.empty() ? fmt::format("HTTP {}", f.status)
                                            : fmt::format("{} (HTTP {})", f.code, f.status);
    const std::string text = f.message.empty() ? fmt::format("{}: {}", what, said) : fmt::format("{}: {}: {}", what, said, f.message);
    Errc code = Errc::remote_error;
    if (one_of(f.code, {"AuthFailure", "SignatureDoesNotMatch", "InvalidClientTokenId", "UnrecognizedClientException",
                        "InvalidAccessKeyId", "ExpiredToken", "ExpiredTokenException", "IncompleteSignature",
                        "MissingAuthenticationToken", "InvalidToken", "AuthorizationHeaderMalformed", "RequestExpired"}) ||
        (f.code.empty() && f.status == 401))
        code = Errc::auth_failed;
    else if (one_of(f.code, {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden",
                             "OptInRequired"}) ||
             (f.code.empty() && f.status == 403))
        code = Errc::permission_denied;
    else if (ends_with(f.code, ".NotFound") || ends_with(f.code, "NotFound") ||
             one_of(f.code, {"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "NotFoundException"}) ||
             (f.code.empty() && f.status == 404))
        code = Errc::not_found;
    else if (one_of(f.code, {"ValidationException", "InvalidParameterValue", "InvalidParameter", "MissingParameter",
                             "InvalidParameterCombination", "InvalidRequest", "InvalidArgument", "InvalidRange"}) ||
             f.code.rfind("Invalid", 0) == 0)
        code = Errc::invalid_argument;
    else if (one_of(f.code, {"ConflictException", "IncorrectState", "IncorrectInstanceState", "ConcurrentLimitExceeded",
                             "SnapshotCreationPerVolumeRateExceeded"}))
        code = Errc::conflict;
    if (retryable && code != Errc::remote_error) retryable = false;  // a refusal stays a refusal
    return Error{code, text};
}

namespace {

// One bucket per account and region for the whole process, so that parallel disks and jobs share
// the account's limit rather than each assuming it has all of it.
std::shared_ptr<TokenBucket> account_bucket(const Config &config, double rate) {
    static std::mutex mutex;
    static std::map<std::string, std::weak_ptr<TokenBucket>> buckets;
    const std::string key = config.credentials.access_key_id + "|" + config.region + "|" + config.endpoint("ebs");
    std::lock_guard lock(mutex);
    if (auto existing = buckets[key].lock()) return existing;
    auto bucket = std::make_shared<TokenBucket>(rate, std::max(1.0, rate / 10));
    buckets[key] = bucket;
    return bucket;
}

}  // namespace

Client::Client(Config config, ClientSettings settings)
    : config_(std::move(config)), settings_(std::move(settings)), account_(account_bucket(config_, settings_.account_rate)) {
    http::ClientOptions o;
    o.tls.insecure = settings_.insecure;
    o.tls.ca_file = settings_.ca_file;
    o.connect_timeout = settings_.timeout;
    o.stall_timeout = settings_.timeout;
    o.request_timeout = settings_.request_timeout;
    o.cancel = settings_.cancel;
    http_ = std::make_unique<http::Client>(o);
}

std::string Client::url(const Call &call) const {
    std::string u = config_.endpoint(call.service) + call.path;
    if (!call.query.empty()) u += "?" + form_encode(call.query);
    return u;
}

std::vector<std::string> Client::sign(const std::string &service, const std::string &method, const std::string &url) const {
    SignRequest s;
    s.method = method;
    s.url = url;
    s.payload_sha256 = service == "s3" ? "UNSIGNED-PAYLOAD" : hex_sha256("");
    s.region = config_.region;
    s.service = service;
    s.time = std::chrono::system_clock::now();
    return sign_v4(s, config_.credentials);
}

Result<http::Response> Client::call(const Call &call, TokenBucket *bucket) {
    const std::string target = url(call);
    const std::string what = call.what.empty() ? fmt::format("{} {}", call.method, http::redact_url(target)) : call.what;
    for (unsigned attempt = 0;; ++attempt) {
        HSDK_TRYV(settings_.cancel.check());
        HSDK_TRYV(account_->acquire(settings_.cancel));
        if (bucket != nullptr) HSDK_TRYV(bucket->acquire(settings_.cancel));

        SignRequest s;
        s.method = call.method;
        s.url = target;
        if (!call.content_type.empty()) s.headers.emplace_back("content-type", call.content_type);
        s.payload_sha256 = hex_sha256(call.body);
        s.region = config_.region;
        s.service = call.service;
        s.time = std::chrono::system_clock::now();
        http::Request request;
        request.method = call.method;
        request.url = target;
        request.body = call.body;
        request.max_body = call.max_body;
        request.headers = sign_v4(s, config_.credentials);
        if (!call.content_type.empty()) request.headers.push_back("Content-Type: " + call.content_type);
        for (const auto &h : call.headers) request.headers.push_back(h);
        // An empty POST body would otherwise go out with curl's form content type, unsigned.
        if (call.method == "POST" && call.content_type.empty()) request.headers.push_back("Content-Type:");

        auto sent = http_->send(request);
        Error error;
        bool retryable = false, throttled = false;
        if (!sent) {
            error = sent.error().with_context(what);
            retryable = http::is_transient(sent.error());
        } else if (sent.value().status >= 200 && sent.value().status < 300) {
            account_->succeeded();
            if (bucket != nullptr) bucket->succeeded();
            return std::move(sent).value();
        } else {
            error = fault_error(parse_fault(sent.value()), what, retryable, throttled);
        }
        if (throttled) {
            account_->throttled();
            if (bucket != nullptr) bucket->throttled();
        }
        if (!retryable) return fail(error);
        if (attempt + 1 >= std::max(1u, settings_.max_attempts)) {
            if (throttled)
                return fail(Errc::remote_error,
                            fmt::format("{} (still throttled after {} tries with backoff; lower the request rate or try "
                                        "later)",
                                        error.message, attempt + 1));
            return fail(Error{error.code, fmt::format("{} (gave up after {} tries)", error.message, attempt + 1)});
        }
        log(LogLevel::debug, fmt::format("{}; trying again", error.message));
        http::RetryPolicy policy{settings_.max_attempts, settings_.initial_backoff, settings_.max_backoff};
        if (throttled) policy.initial_delay = std::max(policy.initial_delay, std::chrono::milliseconds(500));
        HSDK_TRYV(http::backoff_sleep(policy, attempt + 1, settings_.cancel));
    }
}

}  // namespace hypersdk::cloud::aws
