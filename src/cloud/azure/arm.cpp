#include "cloud/azure/arm.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace hypersdk::cloud::azure {
namespace {

namespace http = io::http;
using json = nlohmann::json;

std::string form(const std::vector<std::pair<std::string, std::string>> &params) {
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
    return success();
}

std::chrono::milliseconds retry_after(const http::Response &r, std::chrono::milliseconds fallback) {
    const std::string v = r.header("Retry-After");
    if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        return std::chrono::seconds(std::min(120, std::atoi(v.c_str())));
    return fallback;
}

}  // namespace

Error arm_error(const http::Response &response, const std::string &what) {
    std::string code, message;
    auto j = json::parse(response.body, nullptr, false);
    if (j.is_object()) {
        const json &e = j.contains("error") && j["error"].is_object() ? j["error"] : j;
        if (e.contains("code") && e["code"].is_string()) code = e["code"].get<std::string>();
        if (e.contains("message") && e["message"].is_string()) message = e["message"].get<std::string>();
        if (code.empty() && j.contains("error") && j["error"].is_string()) code = j["error"].get<std::string>();  // OAuth2
        if (message.empty() && j.contains("error_description") && j["error_description"].is_string())
            message = j["error_description"].get<std::string>().substr(0, j["error_description"].get<std::string>().find_first_of("\r\n"));
    }
    const std::string said = code.empty() ? fmt::format("HTTP {}", response.status) : fmt::format("{} (HTTP {})", code, response.status);
    const std::string text = message.empty() ? fmt::format("{}: {}", what, said) : fmt::format("{}: {}: {}", what, said, message);
    if (response.status == 401 || code == "InvalidAuthenticationToken" || code == "ExpiredAuthenticationToken" || code == "invalid_client" ||
        code == "unauthorized_client" || code == "invalid_grant" || code == "AuthenticationFailed")
        return Error{Errc::auth_failed, text};
    if (response.status == 403 || code == "AuthorizationFailed") return Error{Errc::permission_denied, text};
    if (response.status == 404 || code.find("NotFound") != std::string::npos) return Error{Errc::not_found, text};
    if (response.status == 409) return Error{Errc::conflict, text};
    if (response.status == 400) return Error{Errc::invalid_argument, text};
    return Error{Errc::remote_error, text};
}

Arm::Arm(ArmCredentials credentials, ArmSettings settings) : credentials_(std::move(credentials)), settings_(std::move(settings)) {
    http::ClientOptions o;
    o.tls.insecure = settings_.insecure;
    o.tls.ca_file = settings_.ca_file;
    o.connect_timeout = settings_.timeout;
    o.stall_timeout = settings_.timeout;
    o.request_timeout = std::chrono::seconds(300);
    o.cancel = settings_.cancel;
    http_ = std::make_unique<http::Client>(o);
}

Result<std::string> Arm::token() {
    std::lock_guard lock(token_mutex_);
    if (!credentials_.access_token.empty()) return credentials_.access_token;
    if (!token_.empty() && std::chrono::steady_clock::now() < token_expiry_) return token_;
    const std::string resource = credentials_.audience.back() == '/' ? credentials_.audience : credentials_.audience + "/";
    http::Request r;
    std::string what;
    if (credentials_.managed_identity) {
        r.url = credentials_.imds_endpoint + "?" + form({{"api-version", "2018-02-01"}, {"resource", resource}});
        if (!credentials_.client_id.empty()) r.url += "&client_id=" + http::percent_encode(credentials_.client_id, false);
        r.headers.push_back("Metadata: true");
        what = "Azure managed identity token";
    } else {
        if (credentials_.tenant_id.empty() || credentials_.client_id.empty() || credentials_.client_secret.empty())
            return fail(Errc::auth_failed, "no Azure credentials: give tenant_id, client_id and a client secret (AZURE_TENANT_ID, "
                                           "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), managed_identity, or an access token");
        r.method = "POST";
        r.url = fmt::format("{}/{}/oauth2/v2.0/token", credentials_.authority, http::percent_encode(credentials_.tenant_id, false));
        r.body = form({{"grant_type", "client_credentials"}, {"client_id", credentials_.client_id},
                       {"client_secret", credentials_.client_secret}, {"scope", resource + ".default"}});
        r.headers.push_back("Content-Type: application/x-www-form-urlencoded");
        what = fmt::format("Azure token for client {} in tenant {}", credentials_.client_id, credentials_.tenant_id);
    }
    for (unsigned attempt = 0;; ++attempt) {
        auto sent = http_->send(r);
        const bool last = attempt + 1 >= std::max(1u, settings_.max_attempts);
        if (!sent) {
            if (!http::is_transient(sent.error()) || last) return fail(sent.error().with_context(what));
        } else if (sent.value().status == 200) {
            auto j = json::parse(sent.value().body, nullptr, false);
            if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string())
                return fail(Errc::remote_error, what + ": the answer holds no access_token");
            token_ = j["access_token"].get<std::string>();
            long expires = 3600;
            if (j.contains("expires_in")) {
                if (j["expires_in"].is_number()) expires = j["expires_in"].get<long>();
                else if (j["expires_in"].is_string()) expires = std::atol(j["expires_in"].get<std::string>().c_str());
            }
            token_expiry_ = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(60L, expires - 300));
            return token_;
        } else if ((sent.value().status != 429 && sent.value().status < 500) || last) {
            return fail(arm_error(sent.value(), what));
        }
        HSDK_TRYV(http::backoff_sleep(http::RetryPolicy{settings_.max_attempts, std::chrono::milliseconds(250), std::chrono::milliseconds(8000)},
                                      attempt + 1, settings_.cancel));
    }
}

std::string Arm::url_for(const std::string &path, const std::string &api_version) const {
    std::string u = path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0 ? path : settings_.endpoint + path;
    if (!api_version.empty() && u.find("api-version=") == std::string::npos)
        u += (u.find('?') == std::string::npos ? "?" : "&") + std::string("api-version=") + api_version;
    return u;
}

Result<http::Response> Arm::send(const std::string &method, const std::string &url, const json &body, const std::string &what) {
    bool renewed = false;
    for (unsigned attempt = 0;; ++attempt) {
        HSDK_TRY(auto bearer, token());
        http::Request r;
        r.method = method;
        r.url = url;
        r.headers.push_back("Authorization: Bearer " + bearer);
        r.headers.push_back("Accept: application/json");
        if (!body.is_null()) {
            r.body = body.dump();
            r.headers.push_back("Content-Type: application/json");
        } else if (method == "POST" || method == "PUT") {
            r.headers.push_back("Content-Type: application/json");
        }
        auto sent = http_->send(r);
        const bool last = attempt + 1 >= std::max(1u, settings_.max_attempts);
        if (!sent) {
            if (!http::is_transient(sent.error()) || last) return fail(sent.error().with_context(what));
            HSDK_TRYV(http::backoff_sleep(http::RetryPolicy{settings_.max_attempts, std::chrono::milliseconds(250),
                                                            std::chrono::milliseconds(8000)},
                                          attempt + 1, settings_.cancel));
            continue;
        }
        const long status = sent.value().status;
        if (status < 300) return sent;
        if (status == 401 && !renewed && credentials_.access_token.empty()) {  // an expired token: once more with a new one
            std::lock_guard lock(token_mutex_);
            token_.clear();
            renewed = true;
            continue;
        }
        if ((status == 429 || status >= 500) && !last) {
            log(LogLevel::debug, fmt::format("{}: HTTP {}; trying again", what, status));
            HSDK_TRYV(sleep_for(retry_after(sent.value(), std::chrono::milliseconds(500) * (1u << std::min(attempt, 5u))), settings_.cancel));
            continue;
        }
        Error e = arm_error(sent.value(), what);
        if (status == 429) e.message += fmt::format(" (still throttled after {} tries)", attempt + 1);
        return fail(std::move(e));
    }
}

Result<json> Arm::call(const std::string &method, const std::string &path, const std::string &api_version, const json &body,
                       const std::string &what) {
    const std::string label = what.empty() ? fmt::format("ARM {} {}", method, path.substr(0, path.find('?'))) : what;
    HSDK_TRY(auto answer, send(method, url_for(path, api_version), body, label));
    if (answer.body.empty()) return json(nullptr);
    auto j = json::parse(answer.body, nullptr, false);
    if (j.is_discarded()) return fail(Errc::remote_error, label + ": the answer is not JSON");
    return j;
}

Result<std::vector<json>> Arm::list(const std::string &path, const std::string &api_version, const std::string &what) {
    std::vector<json> out;
    std::string next = url_for(path, api_version);
    while (!next.empty()) {
        HSDK_TRY(auto page, call("GET", next, "", nullptr, what));
        if (page.contains("value") && page["value"].is_array())
            for (auto &v : page["value"]) out.push_back(std::move(v));
        next = page.contains("nextLink") && page["nextLink"].is_string() ? page["nextLink"].get<std::string>() : std::string();
    }
    return out;
}

Result<json> Arm::long_running(const std::string &method, const std::string &path, const std::string &api_version, const json &body,
                               const std::string &what) {
    const std::string url = url_for(path, api_version);
    HSDK_TRY(auto first, send(method, url, body, what));
    std::string async = first.header("Azure-AsyncOperation"), location = first.header("Location");
    if (first.status != 201 && first.status != 202 && async.empty()) {
        if (first.body.empty()) return json(nullptr);
        return json::parse(first.body, nullptr, false);
    }
    const auto deadline = std::chrono::steady_clock::now() + settings_.operation_timeout;
    auto interval = std::min(settings_.poll_interval, std::chrono::milliseconds(1000));
    for (;;) {
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::timeout, fmt::format("{}: not done after {} s", what, settings_.operation_timeout.count()));
        HSDK_TRYV(sleep_for(interval, settings_.cancel));
        interval = std::min(interval * 2, settings_.poll_interval);
        if (!async.empty()) {
            HSDK_TRY(auto st, send("GET", async, nullptr, what + " (operation status)"));
            auto j = json::parse(st.body, nullptr, false);
            const std::string status = j.is_object() ? j.value("status", "") : "";
            if (status == "Succeeded") break;
            if (status == "Failed" || status == "Canceled") {
                std::string msg = status;
                if (j.contains("error") && j["error"].is_object()) msg += ": " + j["error"].value("message", j["error"].value("code", ""));
                return fail(Errc::remote_error, fmt::format("{}: {}", what, msg));
            }
            continue;
        }
        if (location.empty()) break;
        HSDK_TRY(auto polled, send("GET", location, nullptr, what + " (operation result)"));
        if (polled.status == 202) {
            if (auto l = polled.header("Location"); !l.empty()) location = l;
            continue;
        }
        if (polled.body.empty()) return json(nullptr);
        return json::parse(polled.body, nullptr, false);
    }
    // Azure-AsyncOperation done: the resource as it is now (PUT), or the Location's answer.
    if (!location.empty() && method == "POST") {
        HSDK_TRY(auto polled, send("GET", location, nullptr, what + " (operation result)"));
        if (polled.body.empty()) return json(nullptr);
        return json::parse(polled.body, nullptr, false);
    }
    if (method == "PUT" || method == "PATCH") return call("GET", path, api_version, nullptr, what);
    return json(nullptr);
}

}  // namespace hypersdk::cloud::azure
