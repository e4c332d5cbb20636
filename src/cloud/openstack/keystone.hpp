// OpenStack identity: settings as openstacksdk finds them (the config, a clouds.yaml entry named by
// `cloud` or OS_CLOUD, the OS_* variables), Keystone v3 password or application-credential tokens
// reused until shortly before they expire, and endpoints from the token's service catalog
// (interface and region honoured). The password, secret and tokens are never logged.
#pragma once

#include "cloud/rest.hpp"

#include <hypersdk/byte_source.hpp>
#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hypersdk::cloud::openstack {

struct AuthSettings {
    std::string auth_url;
    std::string username, user_id, password, user_domain_name, user_domain_id;
    std::string project_name, project_id, project_domain_name, project_domain_id;
    std::string application_credential_id, application_credential_secret;
    std::string region_name, interface = "public";
    std::string cacert;
    bool insecure = false;
    std::string source;  // where the settings came from, for messages
};

// The settings: `given` (the config's keys) over the clouds.yaml entry `cloud` (or OS_CLOUD) over
// the OS_* variables. invalid_argument when no auth_url results.
Result<AuthSettings> resolve_auth(const AuthSettings &given, const std::string &cloud);

// OpenStack's error answers ({"itemNotFound": {"message"}}, {"error": {"message"}}, Glance's
// text) as an error naming `what`.
Error openstack_error(const io::http::Response &response, const std::string &what);

class Keystone {
public:
    Keystone(AuthSettings settings, RestSettings rest);

    // "X-Auth-Token: ..." (a new token when `renew`).
    Result<std::vector<std::string>> headers(bool renew);
    // The endpoint of a service type (compute, image, volumev3, ...) in the token's catalog for
    // the interface and region; not_found when the catalog has none.
    Result<std::string> endpoint(const std::vector<std::string> &types);
    [[nodiscard]] const AuthSettings &settings() const noexcept { return s_; }
    [[nodiscard]] const std::string &project_id();

private:
    Result<TokenCache::Token> issue();

    AuthSettings s_;
    RestSettings rest_;
    std::unique_ptr<io::http::Client> http_;
    TokenCache cache_;
    std::mutex mutex_;
    nlohmann::json catalog_;
    std::string project_id_;
};

// A Keystone session's JSON client (every call carries the token; a 401 gets a new one once).
std::shared_ptr<RestClient> service_client(const std::shared_ptr<Keystone> &keystone, const RestSettings &rest);

// A Glance image's data as a byte source: a raw image streams (its md5 checksum and os_hash_value
// verified before the last byte is handed out; a dropped transfer resumes with a Range), other
// formats are read by ranges. `image` is the image's JSON.
Result<std::shared_ptr<ByteSource>> open_glance_image(const std::shared_ptr<RestClient> &client, const std::string &image_endpoint,
                                                      const nlohmann::json &image, const HttpSourceOptions &options);

// glance://IMAGE_ID with the OS_* variables (or OS_CLOUD) for the credentials.
Result<std::shared_ptr<ByteSource>> open_glance_location(std::string_view location, const HttpSourceOptions &options);

}  // namespace hypersdk::cloud::openstack
