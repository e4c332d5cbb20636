// Azure Resource Manager: a bearer token (service principal client secret, managed identity, or a
// token given), JSON calls with api-version, nextLink paging, long-running operations
// (Azure-AsyncOperation or Location polled until done), and 429 / 5xx retried after Retry-After.
#pragma once

#include "cloud/rest.hpp"

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hypersdk::cloud::azure {

struct ArmCredentials {
    std::string tenant_id, client_id;
    std::string client_secret;  // a secret: never logged
    std::string access_token;   // a token given as it is (a secret too)
    bool managed_identity = false;
    std::string authority = "https://login.microsoftonline.com";
    std::string imds_endpoint = "http://169.254.169.254/metadata/identity/oauth2/token";
    // The resource tokens are asked for: ARM's audience, which stays Azure's own when the
    // endpoint is overridden (a proxy, a test server); sovereign clouds name theirs.
    std::string audience = "https://management.azure.com/";
};

struct ArmSettings {
    std::string endpoint = "https://management.azure.com";
    std::string subscription_id;
    unsigned max_attempts = 8;
    std::chrono::seconds timeout{60};
    std::chrono::milliseconds poll_interval{2000};
    std::chrono::seconds operation_timeout{3600};
    bool insecure = false;
    std::string ca_file;
    CancelToken cancel;
};

class Arm {
public:
    Arm(ArmCredentials credentials, ArmSettings settings);

    [[nodiscard]] const ArmSettings &settings() const noexcept { return settings_; }

    // A call to `path` (starting with /subscriptions/..., or a full URL: a nextLink, an operation
    // URL) with api-version added when the path has none; the answer's JSON (null for an empty
    // body). Errors: auth_failed (401, InvalidAuthenticationToken...), permission_denied
    // (AuthorizationFailed), not_found (ResourceNotFound...), conflict, invalid_argument.
    Result<nlohmann::json> call(const std::string &method, const std::string &path, const std::string &api_version,
                                const nlohmann::json &body = nullptr, const std::string &what = {});
    // Every item of a list, following nextLink.
    Result<std::vector<nlohmann::json>> list(const std::string &path, const std::string &api_version, const std::string &what);
    // A long-running operation: the call, then its Azure-AsyncOperation (or Location) polled until
    // it ends; the final resource (or the Location's answer) is returned.
    Result<nlohmann::json> long_running(const std::string &method, const std::string &path, const std::string &api_version,
                                        const nlohmann::json &body, const std::string &what);

private:
    Result<TokenCache::Token> fetch_token();
    Result<io::http::Response> send(const std::string &method, const std::string &url, const nlohmann::json &body, const std::string &what);
    std::string url_for(const std::string &path, const std::string &api_version) const;

    ArmCredentials credentials_;
    ArmSettings settings_;
    TokenCache tokens_;
    std::unique_ptr<RestClient> rest_;
};

// ARM's {"error": {"code", "message"}} answer as an error naming `what`.
Error arm_error(const io::http::Response &response, const std::string &what);

}  // namespace hypersdk::cloud::azure
