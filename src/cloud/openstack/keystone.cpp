#include "cloud/openstack/keystone.hpp"

#include "io/http_source.hpp"
#include "io/tar_stream_source.hpp"
#include "core/env.hpp"
#include "core/json_fields.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>

namespace hypersdk::cloud::openstack {
namespace {

namespace http = io::http;
using json = nlohmann::json;

using core::env;

void take(std::string &into, const std::string &value) {
    if (into.empty()) into = value;
}

std::string yaml_str(const YAML::Node &n, const char *key) {
    if (!n || !n.IsMap() || !n[key] || !n[key].IsScalar()) return {};
    return n[key].as<std::string>();
}

// The clouds.yaml openstacksdk would read: OS_CLIENT_CONFIG_FILE, ./clouds.yaml, the user's
// config folder, /etc/openstack.
std::string clouds_yaml_path() {
    if (auto f = env("OS_CLIENT_CONFIG_FILE"); !f.empty()) return f;
    std::vector<std::string> candidates{"clouds.yaml"};
    if (auto xdg = env("XDG_CONFIG_HOME"); !xdg.empty()) candidates.push_back(xdg + "/openstack/clouds.yaml");
    else if (auto home = env("HOME"); !home.empty()) candidates.push_back(home + "/.config/openstack/clouds.yaml");
    candidates.push_back("/etc/openstack/clouds.yaml");
    for (const auto &c : candidates) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(c, ec)) return c;
    }
    return {};
}

Result<AuthSettings> from_clouds_yaml(const std::string &cloud) {
    const std::string path = clouds_yaml_path();
    if (path.empty())
        return fail(Errc::not_found, fmt::format("OpenStack cloud '{}': no clouds.yaml (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, "
                                                 "~/.config/openstack/clouds.yaml or /etc/openstack/clouds.yaml)",
                                                 cloud));
    YAML::Node root;
    try {
        root = YAML::LoadFile(path);
    } catch (const std::exception &e) {
        return fail(Errc::invalid_argument, fmt::format("{} is not valid YAML: {}", path, e.what()));
    }
    const YAML::Node clouds = root["clouds"];
    if (!clouds || !clouds.IsMap() || !clouds[cloud] || !clouds[cloud].IsMap())
        return fail(Errc::not_found, fmt::format("{} has no cloud named '{}'", path, cloud));
    const YAML::Node c = clouds[cloud];
    const YAML::Node auth = c["auth"];
    AuthSettings s;
    s.source = fmt::format("cloud '{}' of {}", cloud, path);
    s.auth_url = yaml_str(auth, "auth_url");
    s.username = yaml_str(auth, "username");
    s.user_id = yaml_str(auth, "user_id");
    s.password = yaml_str(auth, "password");
    s.user_domain_name = yaml_str(auth, "user_domain_name");
    s.user_domain_id = yaml_str(auth, "user_domain_id");
    s.project_name = yaml_str(auth, "project_name");
    if (s.project_name.empty()) s.project_name = yaml_str(auth, "tenant_name");
    s.project_id = yaml_str(auth, "project_id");
    s.project_domain_name = yaml_str(auth, "project_domain_name");
    s.project_domain_id = yaml_str(auth, "project_domain_id");
    s.application_credential_id = yaml_str(auth, "application_credential_id");
    s.application_credential_secret = yaml_str(auth, "application_credential_secret");
    s.region_name = yaml_str(c, "region_name");
    if (auto i = yaml_str(c, "interface"); !i.empty()) s.interface = i;
    s.cacert = yaml_str(c, "cacert");
    if (auto v = yaml_str(c, "verify"); v == "false" || v == "False") s.insecure = true;
    return s;
}

AuthSettings from_env() {
    AuthSettings s;
    s.source = "OS_* variables";
    s.auth_url = env("OS_AUTH_URL");
    s.username = env("OS_USERNAME");
    s.user_id = env("OS_USER_ID");
    s.password = env("OS_PASSWORD");
    s.user_domain_name = env("OS_USER_DOMAIN_NAME");
    s.user_domain_id = env("OS_USER_DOMAIN_ID");
    s.project_name = env("OS_PROJECT_NAME");
    if (s.project_name.empty()) s.project_name = env("OS_TENANT_NAME");
    s.project_id = env("OS_PROJECT_ID");
    s.project_domain_name = env("OS_PROJECT_DOMAIN_NAME");
    s.project_domain_id = env("OS_PROJECT_DOMAIN_ID");
    s.application_credential_id = env("OS_APPLICATION_CREDENTIAL_ID");
    s.application_credential_secret = env("OS_APPLICATION_CREDENTIAL_SECRET");
    s.region_name = env("OS_REGION_NAME");
    if (auto i = env("OS_INTERFACE"); !i.empty()) s.interface = i;
    s.cacert = env("OS_CACERT");
    return s;
}

// "2026-12-07T12:00:00.000000Z" -> seconds from now (an hour when it cannot be read).
std::chrono::seconds lifetime_of(const std::string &expires_at) {
    std::tm tm{};
    if (expires_at.size() < 19 || !strptime(expires_at.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return std::chrono::hours(1);
    const std::time_t at = timegm(&tm);
    const std::time_t now = std::time(nullptr);
    return std::chrono::seconds(std::max<long>(0, static_cast<long>(at - now)));
}

std::string strip_tags(const std::string &text) {
    std::string out;
    bool in_tag = false;
    for (char c : text) {
        if (c == '<') in_tag = true;
        else if (c == '>') {
            in_tag = false;
            out += ' ';
        } else if (!in_tag) out += c;
    }
    std::string squeezed;
    for (char c : out) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            if (!squeezed.empty() && squeezed.back() != ' ') squeezed += ' ';
        } else squeezed += c;
    }
    while (!squeezed.empty() && squeezed.back() == ' ') squeezed.pop_back();
    return squeezed.substr(0, 300);
}

// md5 (Glance's checksum) and the os_hash_algo digest of the stored bytes, compared at the end.
class GlanceCheck final : public io::StreamCheck {
public:
    GlanceCheck(std::string name, std::string md5, std::string algo, std::string value)
        : name_(std::move(name)), md5_hex_(std::move(md5)), algo_(std::move(algo)), value_(std::move(value)) {
        if (!md5_hex_.empty()) md5_ = start(EVP_md5());
        if (!value_.empty()) {
            const EVP_MD *md = EVP_get_digestbyname(algo_.c_str());
            if (md != nullptr) hash_ = start(md);
        }
    }
    ~GlanceCheck() override {
        EVP_MD_CTX_free(md5_);
        EVP_MD_CTX_free(hash_);
    }
    void update(std::span<const std::byte> stored) override {
        if (md5_) EVP_DigestUpdate(md5_, stored.data(), stored.size());
        if (hash_) EVP_DigestUpdate(hash_, stored.data(), stored.size());
    }
    Result<void> finish() override {
        if (md5_) {
            const std::string got = hex(md5_);
            if (got != md5_hex_)
                return fail(Errc::checksum_mismatch, fmt::format("{}: the image data's md5 is {}, Glance's checksum says {}", name_, got, md5_hex_));
        }
        if (hash_) {
            const std::string got = hex(hash_);
            if (got != value_)
                return fail(Errc::checksum_mismatch,
                            fmt::format("{}: the image data's {} differs from Glance's os_hash_value", name_, algo_));
        }
        return success();
    }

private:
    static EVP_MD_CTX *start(const EVP_MD *md) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (c != nullptr && EVP_DigestInit_ex(c, md, nullptr) != 1) {
            EVP_MD_CTX_free(c);
            return nullptr;
        }
        return c;
    }
    static std::string hex(EVP_MD_CTX *c) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        EVP_DigestFinal_ex(c, d, &n);
        std::string out;
        for (unsigned i = 0; i < n; ++i) out += fmt::format("{:02x}", d[i]);
        return out;
    }

    std::string name_, md5_hex_, algo_, value_;
    EVP_MD_CTX *md5_ = nullptr;
    EVP_MD_CTX *hash_ = nullptr;
};

using json_fields::str;

}  // namespace

Error openstack_error(const http::Response &response, const std::string &what) {
    std::string message;
    auto j = json::parse(response.body, nullptr, false);
    if (j.is_object()) {
        for (const auto &[key, value] : j.items()) {
            if (value.is_object() && value.contains("message") && value["message"].is_string()) {
                message = value["message"].get<std::string>();
                break;
            }
        }
        if (message.empty() && j.contains("message") && j["message"].is_string()) message = j["message"].get<std::string>();
    } else if (!response.body.empty()) {
        message = strip_tags(response.body);
    }
    const std::string text = message.empty() ? fmt::format("{}: HTTP {}", what, response.status)
                                             : fmt::format("{}: HTTP {}: {}", what, response.status, message.substr(0, 400));
    switch (response.status) {
    case 401: return Error{Errc::auth_failed, text};
    case 403: return Error{Errc::permission_denied, text};
    case 404: return Error{Errc::not_found, text};
    case 409: return Error{Errc::conflict, text};
    case 400: return Error{Errc::invalid_argument, text};
    default: return Error{Errc::remote_error, text};
    }
}

Result<AuthSettings> resolve_auth(const AuthSettings &given, const std::string &cloud_name) {
    AuthSettings s = given;
    s.source = "the config";
    const std::string cloud = !cloud_name.empty() ? cloud_name : env("OS_CLOUD");
    std::vector<AuthSettings> layers;
    if (!cloud.empty()) {
        HSDK_TRY(auto c, from_clouds_yaml(cloud));
        layers.push_back(std::move(c));
    } else {
        layers.push_back(from_env());
    }
    const bool given_auth = !given.auth_url.empty();
    for (const auto &l : layers) {
        if (!given_auth) s.source = l.source;
        take(s.auth_url, l.auth_url);
        // Identity comes as one piece: a config naming a user does not borrow another's secret.
        const bool given_identity = !given.username.empty() || !given.user_id.empty() || !given.application_credential_id.empty();
        if (!given_identity) {
            take(s.username, l.username);
            take(s.user_id, l.user_id);
            take(s.password, l.password);
            take(s.application_credential_id, l.application_credential_id);
            take(s.application_credential_secret, l.application_credential_secret);
        }
        take(s.user_domain_name, l.user_domain_name);
        take(s.user_domain_id, l.user_domain_id);
        const bool given_project = !given.project_name.empty() || !given.project_id.empty();
        if (!given_project) {
            take(s.project_name, l.project_name);
            take(s.project_id, l.project_id);
        }
        take(s.project_domain_name, l.project_domain_name);
        take(s.project_domain_id, l.project_domain_id);
        take(s.region_name, l.region_name);
        if (given.interface == "public" && !l.interface.empty()) s.interface = l.interface;
        take(s.cacert, l.cacert);
        s.insecure = s.insecure || l.insecure;
    }
    if (s.auth_url.empty())
        return fail(Errc::invalid_argument, "no OpenStack auth_url: give it in the config, a clouds.yaml cloud (OS_CLOUD) or OS_AUTH_URL");
    if (s.user_domain_name.empty() && s.user_domain_id.empty()) s.user_domain_name = "Default";
    if (s.project_domain_name.empty() && s.project_domain_id.empty()) s.project_domain_name = "Default";
    return s;
}

Keystone::Keystone(AuthSettings settings, RestSettings rest) : s_(std::move(settings)), rest_(std::move(rest)), cache_([this] { return issue(); }) {
    rest_.insecure = rest_.insecure || s_.insecure;
    if (rest_.ca_file.empty()) rest_.ca_file = s_.cacert;
    http_ = std::make_unique<http::Client>(client_options(rest_, std::chrono::seconds(120)));
}

Result<TokenCache::Token> Keystone::issue() {
    json identity;
    const bool app = !s_.application_credential_id.empty();
    if (app) {
        if (s_.application_credential_secret.empty())
            return fail(Errc::auth_failed, "an OpenStack application credential needs its secret (application_credential_secret_env or _file, "
                                           "OS_APPLICATION_CREDENTIAL_SECRET)");
        identity = {{"methods", {"application_credential"}},
                    {"application_credential", {{"id", s_.application_credential_id}, {"secret", s_.application_credential_secret}}}};
    } else {
        if ((s_.username.empty() && s_.user_id.empty()) || s_.password.empty())
            return fail(Errc::auth_failed, fmt::format("no OpenStack credentials in {}: give a username and password (password_env or "
                                                       "_file, OS_PASSWORD) or an application credential",
                                                       s_.source));
        json user{{"password", s_.password}};
        if (!s_.user_id.empty()) user["id"] = s_.user_id;
        else {
            user["name"] = s_.username;
            user["domain"] = s_.user_domain_id.empty() ? json{{"name", s_.user_domain_name}} : json{{"id", s_.user_domain_id}};
        }
        identity = {{"methods", {"password"}}, {"password", {{"user", user}}}};
    }
    json auth{{"identity", identity}};
    if (!app && (!s_.project_id.empty() || !s_.project_name.empty())) {
        json project;
        if (!s_.project_id.empty()) project["id"] = s_.project_id;
        else {
            project["name"] = s_.project_name;
            project["domain"] = s_.project_domain_id.empty() ? json{{"name", s_.project_domain_name}} : json{{"id", s_.project_domain_id}};
        }
        auth["scope"] = {{"project", project}};
    }
    std::string base = s_.auth_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (base.size() < 3 || base.compare(base.size() - 3, 3, "/v3") != 0) base += "/v3";
    http::Request r;
    r.method = "POST";
    r.url = base + "/auth/tokens";
    r.body = json{{"auth", auth}}.dump();
    r.headers = {"Content-Type: application/json", "Accept: application/json"};
    const std::string what = fmt::format("Keystone token at {} ({})", http::redact_url(base), s_.source);
    HSDK_TRY(auto answer, send_with_retries(*http_, r, std::max(1u, rest_.max_attempts), rest_.cancel, what));
    if (answer.status != 201 && answer.status != 200) return fail(openstack_error(answer, what));
    const std::string token = answer.header("X-Subject-Token");
    auto body = json::parse(answer.body, nullptr, false);
    if (token.empty() || !body.is_object() || !body.contains("token"))
        return fail(Errc::remote_error, what + ": the answer holds no token");
    {
        std::lock_guard lock(mutex_);
        catalog_ = body["token"].value("catalog", json::array());
        project_id_ = str(body["token"].value("project", json::object()), "id");
    }
    TokenCache::Token t;
    t.value = token;
    t.lifetime = lifetime_of(str(body["token"], "expires_at"));
    return t;
}

Result<std::vector<std::string>> Keystone::headers(bool renew) {
    HSDK_TRY(auto token, cache_.get(renew));
    return std::vector<std::string>{"X-Auth-Token: " + token};
}

const std::string &Keystone::project_id() {
    std::lock_guard lock(mutex_);
    return project_id_;
}

Result<std::string> Keystone::endpoint(const std::vector<std::string> &types) {
    HSDK_TRYV(headers(false));  // the catalog comes with the token
    std::lock_guard lock(mutex_);
    for (const auto &type : types)
        for (const auto &service : catalog_) {
            if (str(service, "type") != type) continue;
            for (const auto &e : service.value("endpoints", json::array())) {
                if (str(e, "interface") != s_.interface) continue;
                if (!s_.region_name.empty() && str(e, "region") != s_.region_name && str(e, "region_id") != s_.region_name) continue;
                std::string url = str(e, "url");
                while (!url.empty() && url.back() == '/') url.pop_back();
                return url;
            }
        }
    return fail(Errc::not_found, fmt::format("the OpenStack catalog has no {} endpoint for interface {}{}", types.front(), s_.interface,
                                             s_.region_name.empty() ? "" : " in region " + s_.region_name));
}

std::shared_ptr<RestClient> service_client(const std::shared_ptr<Keystone> &keystone, const RestSettings &rest) {
    RestSettings r = rest;
    if (keystone->settings().insecure) r.insecure = true;
    if (r.ca_file.empty()) r.ca_file = keystone->settings().cacert;
    return std::make_shared<RestClient>(r, [keystone](bool renew) { return keystone->headers(renew); }, openstack_error);
}

Result<std::shared_ptr<ByteSource>> open_glance_image(const std::shared_ptr<RestClient> &client, const std::string &image_endpoint,
                                                      const json &image, const HttpSourceOptions &options) {
    const std::string id = str(image, "id");
    const std::string name = fmt::format("glance://{}", id);
    const std::string url = fmt::format("{}/v2/images/{}/file", image_endpoint, http::percent_encode(id, false));
    const std::string status = str(image, "status");
    if (status != "active") return fail(Errc::invalid_argument, fmt::format("{}: the image is {}, not active", name, status.empty() ? "?" : status));
    const std::string format = str(image, "disk_format");
    if (format == "raw" || format.empty()) {
        if (!image.contains("size") || !image["size"].is_number_unsigned())
            return fail(Errc::remote_error, fmt::format("{}: Glance gives no size for the image", name));
        io::TarStreamOptions t;
        t.name = name;
        t.tar = false;
        t.size = image["size"].get<std::uint64_t>();
        t.cancel = options.cancel;
        const std::string md5 = str(image, "checksum"), algo = str(image, "os_hash_algo"), value = str(image, "os_hash_value");
        t.make_check = [name, md5, algo, value] { return std::make_unique<GlanceCheck>(name, md5, algo, value); };
        return io::open_tar_stream_source(client->stream_reader(url, "Glance image data " + id), t);
    }
    HttpSourceOptions o = options;
    HSDK_TRY(auto headers, client->auth_headers(false));
    o.headers.insert(o.headers.end(), headers.begin(), headers.end());
    o.refresh_headers = [client]() { return client->auth_headers(true); };
    if (url.rfind("http://", 0) == 0) o.insecure = true;  // the token over plain http: what the catalog says
    return io::open_http_source(url, o);
}

Result<std::shared_ptr<ByteSource>> open_glance_location(std::string_view location, const HttpSourceOptions &options) {
    const std::string id(location.substr(std::string_view("glance://").size()));
    if (id.empty() || id.find('/') != std::string::npos)
        return fail(Errc::invalid_argument, fmt::format("'{}' is not glance://IMAGE_ID", location));
    HSDK_TRY(auto settings, resolve_auth(AuthSettings{}, std::string()));
    RestSettings rest;
    rest.insecure = options.insecure;
    rest.ca_file = options.ca_file;
    rest.max_attempts = std::max(1u, options.max_attempts);
    rest.timeout = std::chrono::seconds(options.timeout_seconds);
    rest.cancel = options.cancel;
    auto keystone = std::make_shared<Keystone>(std::move(settings), rest);
    auto client = service_client(keystone, rest);
    HSDK_TRY(auto endpoint, keystone->endpoint({"image"}));
    HSDK_TRY(auto image, client->call("GET", fmt::format("{}/v2/images/{}", endpoint, http::percent_encode(id, false)), nullptr,
                                       "Glance get image " + id));
    return open_glance_image(client, endpoint, image, options);
}

}  // namespace hypersdk::cloud::openstack
