#include "cloud/azure/arm.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::cloud::azure {
namespace {

namespace http = io::http;
using json = nlohmann::json;

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

Arm::Arm(ArmCredentials credentials, ArmSettings settings)
    : credentials_(std::move(credentials)), settings_(std::move(settings)), tokens_([this] { return fetch_token(); }) {
    RestSettings r;
    r.max_attempts = settings_.max_attempts;
    r.timeout = settings_.timeout;
    r.insecure = settings_.insecure;
    r.ca_file = settings_.ca_file;
    r.cancel = settings_.cancel;
    auto auth = [this](bool renew) -> Result<std::vector<std::string>> {
        // A token given cannot be renewed: a refused one is refused again and reported as such.
        if (!credentials_.access_token.empty()) return std::vector<std::string>{"Authorization: Bearer " + credentials_.access_token};
        HSDK_TRY(auto t, tokens_.get(renew));
        return std::vector<std::string>{"Authorization: Bearer " + t};
    };
    rest_ = std::make_unique<RestClient>(r, auth, arm_error);
}

Result<TokenCache::Token> Arm::fetch_token() {
    const std::string resource = credentials_.audience.back() == '/' ? credentials_.audience : credentials_.audience + "/";
    http::Request r;
    std::string what;
    if (credentials_.managed_identity) {
        r.url = credentials_.imds_endpoint + "?" + form_encode({{"api-version", "2018-02-01"}, {"resource", resource}});
        if (!credentials_.client_id.empty()) r.url += "&client_id=" + http::percent_encode(credentials_.client_id, false);
        r.headers.push_back("Metadata: true");
        what = "Azure managed identity token";
    } else {
        if (credentials_.tenant_id.empty() || credentials_.client_id.empty() || credentials_.client_secret.empty())
            return fail(Errc::auth_failed, "no Azure credentials: give tenant_id, client_id and a client secret (AZURE_TENANT_ID, "
                                           "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), managed_identity, or an access token");
        r.method = "POST";
        r.url = fmt::format("{}/{}/oauth2/v2.0/token", credentials_.authority, http::percent_encode(credentials_.tenant_id, false));
        r.body = form_encode({{"grant_type", "client_credentials"}, {"client_id", credentials_.client_id},
                              {"client_secret", credentials_.client_secret}, {"scope", resource + ".default"}});
        r.headers.push_back("Content-Type: application/x-www-form-urlencoded");
        what = fmt::format("Azure token for client {} in tenant {}", credentials_.client_id, credentials_.tenant_id);
    }
    HSDK_TRY(auto answer, send_with_retries(rest_->http(), r, settings_.max_attempts, settings_.cancel, what));
    if (answer.status != 200) return fail(arm_error(answer, what));
    return parse_oauth_token(answer, what);
}

std::string Arm::url_for(const std::string &path, const std::string &api_version) const {
    std::string u = path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0 ? path : settings_.endpoint + path;
    if (!api_version.empty() && u.find("api-version=") == std::string::npos)
        u += (u.find('?') == std::string::npos ? "?" : "&") + std::string("api-version=") + api_version;
    return u;
}

Result<http::Response> Arm::send(const std::string &method, const std::string &url, const json &body, const std::string &what) {
    return rest_->send(method, url, body, what);
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
