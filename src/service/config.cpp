#include "service/auth.hpp"
#include "service/util.hpp"

#include <hypersdk/service.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hypersdk::service {
namespace {

Result<nlohmann::json> expand_environment(const nlohmann::json &v) {
    if (v.is_string()) {
        const auto &s = v.get_ref<const std::string &>();
        std::string out;
        std::size_t i = 0;
        while (i < s.size()) {
            const auto open = s.find("${", i);
            if (open == std::string::npos) {
                out += s.substr(i);
                break;
            }
            const auto close = s.find('}', open);
            if (close == std::string::npos) {
                out += s.substr(i);
                break;
            }
            out += s.substr(i, open - i);
            const std::string name = s.substr(open + 2, close - open - 2);
            const char *value = std::getenv(name.c_str());
            if (!value) return fail(Errc::invalid_argument, fmt::format("config: ${{{}}} is used but the environment variable {} is not set", name, name));
            out += value;
            i = close + 1;
        }
        return nlohmann::json(out);
    }
    if (v.is_object()) {
        nlohmann::json o = nlohmann::json::object();
        for (const auto &[k, x] : v.items()) {
            HSDK_TRY(auto e, expand_environment(x));
            o[k] = std::move(e);
        }
        return o;
    }
    if (v.is_array()) {
        nlohmann::json a = nlohmann::json::array();
        for (const auto &x : v) {
            HSDK_TRY(auto e, expand_environment(x));
            a.push_back(std::move(e));
        }
        return a;
    }
    return v;
}

const nlohmann::json &config_section(const nlohmann::json &doc, const char *key) {
    static const nlohmann::json empty = nlohmann::json::object();
    return doc.is_object() && doc.contains(key) && doc[key].is_object() ? doc[key] : empty;
}

}  // namespace

Result<nlohmann::json> read_config_document(const std::string &path) {
    std::ifstream in(path);
    if (!in) return fail(Errc::not_found, "cannot read the config file " + path);
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json doc;
    try {
        doc = yaml_text_to_json(text.str());
    } catch (const std::exception &e) {
        return fail(Errc::invalid_argument, fmt::format("config file {}: {}", path, e.what()));
    }
    if (doc.is_null()) doc = nlohmann::json::object();
    if (!doc.is_object()) return fail(Errc::invalid_argument, "config file " + path + ": expected a mapping at the top");
    return expand_environment(doc);
}

Result<Config> service_config(const nlohmann::json &doc) {
    Config c;
    const auto &daemon = config_section(doc, "daemon");
    const auto &db = config_section(doc, "database");
    c.state_dir = daemon.value("state_dir", "");
    c.database_path = db.value("path", "");
    if (c.database_path.empty() && !c.state_dir.empty()) c.database_path = (std::filesystem::path(c.state_dir) / "hypersdk.db").string();
    c.providers = config_section(doc, "providers");
    c.export_defaults = config_section(doc, "export");
    c.hyper2kvm = config_section(doc, "hyper2kvm");
    c.scheduler = config_section(doc, "scheduler");
    c.workers = daemon.value("workers", 4u);
    if (c.export_defaults.contains("concurrent_exports") && c.export_defaults["concurrent_exports"].is_number_unsigned())
        c.workers = c.export_defaults["concurrent_exports"].get<unsigned>();
    if (c.workers == 0) return fail(Errc::invalid_argument, "config: daemon.workers must be at least 1");
    c.per_host_limit = c.scheduler.value("per_host_limit", daemon.value("per_host_limit", 0u));
    if (doc.contains("webhooks")) {
        if (!doc["webhooks"].is_array()) return fail(Errc::invalid_argument, "config: webhooks must be a list");
        c.webhooks = doc["webhooks"];
    }
    c.webhook_secret = doc.value("webhook_secret", config_section(doc, "security").value("webhook_secret", ""));
    const auto &auth = config_section(doc, "auth");
    c.auth_required = auth.value("required", true);
    for (const auto &k : auth.value("api_keys", nlohmann::json::array())) {
        ApiKey key;
        key.name = k.value("name", "");
        key.key = k.value("key", "");
        const auto role = parse_role(k.value("role", "read"));
        if (!role) return fail(Errc::invalid_argument, fmt::format("config: api key {}: unknown role '{}' (read, operate, admin)", key.name, k.value("role", "")));
        key.role = *role;
        // A short key can be guessed; refuse to start with one rather than serve behind it.
        if (key.key.size() < 16) return fail(Errc::invalid_argument, fmt::format("config: api key {} is too weak: at least 16 characters", key.name.empty() ? "(unnamed)" : key.name));
        c.api_keys.push_back(std::move(key));
    }
    for (const auto &u : auth.value("users", nlohmann::json::array())) {
        User user;
        user.username = u.value("username", "");
        user.password = u.value("password", "");
        user.password_hash = u.value("password_hash", "");
        const auto role = parse_role(u.value("role", "read"));
        if (user.username.empty() || (user.password.empty() && user.password_hash.empty()) || !role)
            return fail(Errc::invalid_argument, "config: auth.users entries need username, password or password_hash, and a role");
        user.role = *role;
        c.users.push_back(std::move(user));
    }
    c.audit_log_path = daemon.value("audit_log", auth.value("audit_log", ""));
    if (c.audit_log_path.empty() && !c.state_dir.empty()) c.audit_log_path = (std::filesystem::path(c.state_dir) / "audit.log").string();
    c.credential_key_file = auth.value("credential_key_file", daemon.value("credential_key_file", ""));
    return c;
}

}  // namespace hypersdk::service
