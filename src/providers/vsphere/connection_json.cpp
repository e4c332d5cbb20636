// vSphere connection options from the JSON config that requests and the provider registry use.
#include <hypersdk/vsphere.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

namespace hypersdk::vsphere {

Result<ConnectionOptions> connection_from_json(const nlohmann::json &config, const CancelToken &cancel) {
    if (!config.is_null() && !config.is_object()) return fail(Errc::invalid_argument, "connection: expected an object");
    const nlohmann::json c = config.is_object() ? config : nlohmann::json::object();
    ConnectionOptions o;
    o.url = c.value("url", "");
    o.username = c.value("username", "");
    o.insecure = c.value("insecure", false);
    o.ca_file = c.value("ca_file", "");
    o.thumbprint = c.value("thumbprint", "");
    o.max_attempts = c.value("max_attempts", 5u);
    if (c.contains("password")) {
        o.password = c.value("password", "");
    } else if (c.contains("password_env")) {
        const std::string env = c.value("password_env", "");
        const char *v = std::getenv(env.c_str());
        if (v == nullptr) return fail(Errc::invalid_argument, fmt::format("/connection/password_env: ${} is not set", env));
        o.password = v;
    } else if (c.contains("password_file")) {
        const std::string file = c.value("password_file", "");
        std::ifstream in(file);
        if (!in) return fail(Errc::not_found, fmt::format("/connection/password_file: cannot read '{}'", file));
        std::getline(in, o.password);  // the first line; its newline is not part of the password
        if (!o.password.empty() && o.password.back() == '\r') o.password.pop_back();
    }
    o.cancel = cancel;
    return with_environment(std::move(o));
}

}  // namespace hypersdk::vsphere
