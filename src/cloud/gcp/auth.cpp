#include "cloud/gcp/auth.hpp"

#include "core/base64.hpp"
#include "core/env.hpp"
#include "core/json_fields.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

namespace hypersdk::cloud::gcp {
namespace {

namespace http = io::http;
using json = nlohmann::json;

using core::env;

using json_fields::str;

Result<Credentials> from_file(const std::string &path, const std::string &source) {
    std::ifstream in(path);
    if (!in) return fail(Errc::auth_failed, fmt::format("cannot read the Google credentials file {} ({})", path, source));
    std::stringstream text;
    text << in.rdbuf();
    auto j = json::parse(text.str(), nullptr, false);
    if (!j.is_object()) return fail(Errc::auth_failed, fmt::format("the Google credentials file {} is not JSON", path));
    Credentials c;
    c.source = source;
    c.project_id = str(j, "project_id");
    if (auto uri = str(j, "token_uri"); !uri.empty()) c.token_uri = uri;
    const std::string type = str(j, "type");
    if (type == "service_account") {
        c.kind = Credentials::Kind::service_account;
        c.client_email = str(j, "client_email");
        c.private_key = str(j, "private_key");
        c.private_key_id = str(j, "private_key_id");
        if (c.client_email.empty() || c.private_key.empty())
            return fail(Errc::auth_failed, fmt::format("the service-account key {} has no client_email or private_key", path));
    } else if (type == "authorized_user") {
        c.kind = Credentials::Kind::authorized_user;
        c.client_id = str(j, "client_id");
        c.client_secret = str(j, "client_secret");
        c.refresh_token = str(j, "refresh_token");
        c.project_id = str(j, "quota_project_id");
        if (c.client_id.empty() || c.refresh_token.empty())
            return fail(Errc::auth_failed, fmt::format("the authorized_user file {} has no client_id or refresh_token", path));
    } else {
        return fail(Errc::unsupported, fmt::format("unsupported: Google credentials of type '{}' in {} (service_account and "
                                                   "authorized_user are read)",
                                                   type, path));
    }
    return c;
}

struct KeyFree {
    void operator()(EVP_PKEY *k) const noexcept { EVP_PKEY_free(k); }
};
struct BioFree {
    void operator()(BIO *b) const noexcept { BIO_free(b); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX *c) const noexcept { EVP_MD_CTX_free(c); }
};

}  // namespace

Error google_error(const http::Response &response, const std::string &what) {
    std::string status, reason, message;
    auto j = json::parse(response.body, nullptr, false);
    if (j.is_object()) {
        if (j.contains("error") && j["error"].is_object()) {
            const json &e = j["error"];
            status = str(e, "status");
            message = str(e, "message");
            if (e.contains("errors") && e["errors"].is_array() && !e["errors"].empty() && e["errors"][0].is_object())
                reason = str(e["errors"][0], "reason");
        } else {
            status = str(j, "error");  // OAuth2: invalid_grant, ...
            message = str(j, "error_description");
        }
    }
    const std::string code = !status.empty() ? status : reason;
    const std::string said = code.empty() ? fmt::format("HTTP {}", response.status) : fmt::format("{} (HTTP {})", code, response.status);
    const std::string text = message.empty() ? fmt::format("{}: {}", what, said) : fmt::format("{}: {}: {}", what, said, message.substr(0, 400));
    if (response.status == 401 || status == "UNAUTHENTICATED" || status == "invalid_grant" || status == "invalid_client" ||
        status == "unauthorized_client")
        return Error{Errc::auth_failed, text};
    if (response.status == 403 || status == "PERMISSION_DENIED") return Error{Errc::permission_denied, text};
    if (response.status == 404 || status == "NOT_FOUND" || reason == "notFound") return Error{Errc::not_found, text};
    if (response.status == 409 || status == "ALREADY_EXISTS" || reason == "alreadyExists") return Error{Errc::conflict, text};
    if (response.status == 400) return Error{Errc::invalid_argument, text};
    return Error{Errc::remote_error, text};
}

Result<Credentials> resolve_credentials(const CredentialsInput &input) {
    Credentials c;
    std::string metadata_host = !input.metadata_host.empty() ? input.metadata_host : env("GCE_METADATA_HOST");
    if (!input.access_token.empty()) {
        c.kind = Credentials::Kind::access_token;
        c.access_token = input.access_token;
        c.source = "the access token given";
    } else if (!input.credentials_file.empty()) {
        HSDK_TRY(c, from_file(input.credentials_file, "credentials_file " + input.credentials_file));
    } else if (auto adc = env("GOOGLE_APPLICATION_CREDENTIALS"); !adc.empty()) {
        HSDK_TRY(c, from_file(adc, "GOOGLE_APPLICATION_CREDENTIALS (" + adc + ")"));
    } else if (input.allow_anonymous && metadata_host.empty()) {
        c.kind = Credentials::Kind::anonymous;
        c.source = "no credentials (an emulator)";
    } else {
        c.kind = Credentials::Kind::metadata;
        c.source = "the metadata server";
    }
    if (!input.token_uri.empty()) c.token_uri = input.token_uri;
    if (!metadata_host.empty())
        c.metadata_url = metadata_host.rfind("http://", 0) == 0 || metadata_host.rfind("https://", 0) == 0 ? metadata_host : "http://" + metadata_host;
    return c;
}

Result<std::string> service_account_assertion(const Credentials &c, const std::string &scope, std::int64_t now) {
    json header{{"alg", "RS256"}, {"typ", "JWT"}};
    if (!c.private_key_id.empty()) header["kid"] = c.private_key_id;
    json claims{{"iss", c.client_email}, {"scope", scope}, {"aud", c.token_uri}, {"iat", now}, {"exp", now + 3600}};
    const std::string signing_input = core::base64url_encode(header.dump()) + "." + core::base64url_encode(claims.dump());

    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(c.private_key.data(), static_cast<int>(c.private_key.size())));
    if (!bio) return fail(Errc::auth_failed, "cannot read the service account's private key");
    std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) return fail(Errc::auth_failed, fmt::format("the private key of service account {} is not a PEM private key", c.client_email));
    if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA)
        return fail(Errc::auth_failed, fmt::format("the private key of service account {} is not an RSA key", c.client_email));
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    std::size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char *>(signing_input.data()), signing_input.size()) != 1)
        return fail(Errc::auth_failed, "signing the service-account assertion failed");
    std::string signature(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(signature.data()), &len,
                       reinterpret_cast<const unsigned char *>(signing_input.data()), signing_input.size()) != 1)
        return fail(Errc::auth_failed, "signing the service-account assertion failed");
    signature.resize(len);
    return signing_input + "." + core::base64url_encode(signature);
}

TokenSource::TokenSource(Credentials credentials, RestSettings settings)
    : c_(std::move(credentials)), settings_(std::move(settings)),
      http_(std::make_unique<http::Client>(client_options(settings_, std::chrono::seconds(120)))), cache_([this] { return fetch(); }) {}

Result<std::vector<std::string>> TokenSource::headers(bool renew) {
    if (c_.kind == Credentials::Kind::anonymous) return std::vector<std::string>{};
    // A token given cannot be renewed: a refused one is refused again and reported as such.
    if (c_.kind == Credentials::Kind::access_token) return std::vector<std::string>{"Authorization: Bearer " + c_.access_token};
    HSDK_TRY(auto token, cache_.get(renew));
    return std::vector<std::string>{"Authorization: Bearer " + token};
}

// Off Compute Engine nothing answers at the metadata address: a short wait, then a message that
// says which credentials were looked for.
Result<http::Response> TokenSource::metadata_request(const http::Request &r, const std::string &what) {
    http::ClientOptions o = http_->options();
    o.connect_timeout = std::chrono::seconds(3);
    o.stall_timeout = std::chrono::seconds(10);
    http::Client quick(o);
    auto sent = send_with_retries(quick, r, 2, settings_.cancel, what);
    if (!sent && sent.error().code != Errc::cancelled)
        return fail(Errc::auth_failed, fmt::format("no Google credentials: give credentials_file, GOOGLE_APPLICATION_CREDENTIALS or an "
                                                   "access token (the metadata server at {} did not answer: {})",
                                                   c_.metadata_url, sent.error().message));
    return sent;
}

Result<std::string> TokenSource::metadata_project() {
    if (c_.kind != Credentials::Kind::metadata) return fail(Errc::invalid_argument, "no metadata server in use");
    http::Request r;
    r.url = c_.metadata_url + "/computeMetadata/v1/project/project-id";
    r.headers.push_back("Metadata-Flavor: Google");
    HSDK_TRY(auto answer, metadata_request(r, "Google project from the metadata server"));
    if (answer.status != 200) return fail(google_error(answer, "Google project from the metadata server"));
    std::string project = answer.body;
    while (!project.empty() && (project.back() == '\n' || project.back() == '\r' || project.back() == ' ')) project.pop_back();
    return project;
}

Result<TokenCache::Token> TokenSource::fetch() {
    http::Request r;
    std::string what;
    switch (c_.kind) {
    case Credentials::Kind::service_account: {
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        HSDK_TRY(auto assertion, service_account_assertion(c_, cloud_platform_scope, now));
        r.method = "POST";
        r.url = c_.token_uri;
        r.body = form_encode({{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {"assertion", assertion}});
        r.headers.push_back("Content-Type: application/x-www-form-urlencoded");
        what = fmt::format("Google token for service account {}", c_.client_email);
        break;
    }
    case Credentials::Kind::authorized_user:
        r.method = "POST";
        r.url = c_.token_uri;
        r.body = form_encode({{"grant_type", "refresh_token"}, {"client_id", c_.client_id}, {"client_secret", c_.client_secret},
                              {"refresh_token", c_.refresh_token}});
        r.headers.push_back("Content-Type: application/x-www-form-urlencoded");
        what = fmt::format("Google token for client {} (authorized_user)", c_.client_id);
        break;
    case Credentials::Kind::metadata:
        r.url = c_.metadata_url + "/computeMetadata/v1/instance/service-accounts/default/token";
        r.headers.push_back("Metadata-Flavor: Google");
        what = "Google token from the metadata server";
        break;
    default: return fail(Errc::internal, "no token to fetch for these credentials");
    }
    auto sent = c_.kind == Credentials::Kind::metadata ? metadata_request(r, what)
                                                       : send_with_retries(*http_, r, settings_.max_attempts, settings_.cancel, what);
    if (!sent) return fail(std::move(sent).error());
    const auto &answer = sent.value();
    if (answer.status != 200) {
        Error e = google_error(answer, what);
        if (answer.status == 400 || answer.status == 403) e.code = Errc::auth_failed;  // invalid_grant and friends
        return fail(std::move(e));
    }
    return parse_oauth_token(answer, what);
}

}  // namespace hypersdk::cloud::gcp
