// Google Cloud credentials as Google's client libraries find them: an access token given, a
// service-account key (a JWT signed with RS256 exchanged for a token), an authorized_user file
// (a refresh token), GOOGLE_APPLICATION_CREDENTIALS, or the metadata server of the instance we
// run on (GCE_METADATA_HOST overrides its address). Secrets are never logged.
#pragma once

#include "cloud/rest.hpp"

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace hypersdk::cloud::gcp {

inline constexpr const char *cloud_platform_scope = "https://www.googleapis.com/auth/cloud-platform";

struct CredentialsInput {
    std::string access_token;      // given as it is (a secret)
    std::string credentials_file;  // a service_account or authorized_user JSON file
    std::string token_uri;         // overrides the key file's token_uri
    std::string metadata_host;     // host[:port] of the metadata server; default: $GCE_METADATA_HOST
    // No credentials at all is fine (a storage emulator); otherwise the metadata server is the
    // last resort, as in the client libraries.
    bool allow_anonymous = false;
};

struct Credentials {
    enum class Kind { anonymous, access_token, service_account, authorized_user, metadata } kind = Kind::anonymous;
    std::string source;  // for messages: "GOOGLE_APPLICATION_CREDENTIALS (/path)", "metadata server"
    std::string project_id;  // the key's project_id, when it names one
    std::string access_token, client_email, private_key, private_key_id, client_id, client_secret, refresh_token;
    std::string token_uri = "https://oauth2.googleapis.com/token";
    std::string metadata_url = "http://169.254.169.254";
};

// Resolves the credentials: given token, then credentials_file, then GOOGLE_APPLICATION_CREDENTIALS,
// then (unless anonymous is allowed and none was asked for) the metadata server.
Result<Credentials> resolve_credentials(const CredentialsInput &input);

// A signed JWT assertion for the token endpoint (exposed for tests).
Result<std::string> service_account_assertion(const Credentials &c, const std::string &scope, std::int64_t now_seconds);

// Fetches tokens for `credentials`, cached until shortly before they expire.
class TokenSource {
public:
    TokenSource(Credentials credentials, RestSettings settings);
    // Authorization headers (none for anonymous); `renew` after a refused token.
    Result<std::vector<std::string>> headers(bool renew);
    [[nodiscard]] const Credentials &credentials() const noexcept { return c_; }
    // The project of the instance we run on, from the metadata server (metadata credentials only).
    Result<std::string> metadata_project();

private:
    Result<TokenCache::Token> fetch();
    Result<io::http::Response> metadata_request(const io::http::Request &r, const std::string &what);

    Credentials c_;
    RestSettings settings_;
    std::unique_ptr<io::http::Client> http_;
    TokenCache cache_;
};

// Google's error answer ({"error": {"code", "message", "status", "errors": [{"reason"}]}} or
// OAuth2's {"error", "error_description"}) as an error naming `what`.
Error google_error(const io::http::Response &response, const std::string &what);

}  // namespace hypersdk::cloud::gcp
