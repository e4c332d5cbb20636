// The flags that say which platform to talk to, shared by the commands that do: vSphere's
// connection flags, and --provider / --config for any provider.
#pragma once

#include "cli_support.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace hsdk {

struct ConnectionFlags {
    std::string url, username, password_env, password_file, ca_file, thumbprint;
    bool insecure = false;
    unsigned retries = 5;

    // The request's "connection": the password is named (a variable, a file), never copied into it.
    nlohmann::json request() const {
        nlohmann::json c{{"max_attempts", retries}};
        if (!url.empty()) c["url"] = url;
        if (!username.empty()) c["username"] = username;
        if (insecure) c["insecure"] = true;
        if (!ca_file.empty()) c["ca_file"] = ca_file;
        if (!thumbprint.empty()) c["thumbprint"] = thumbprint;
        if (!password_env.empty()) c["password_env"] = password_env;
        else if (!password_file.empty()) c["password_file"] = password_file;
        return c;
    }
};

void add_connection_flags(CLI::App *app, ConnectionFlags &f);

// --provider and its config: vSphere's from the connection flags (GOVC_* for what they leave out),
// any provider's from --config (JSON, @FILE or @-), whose keys win.
struct ProviderFlags {
    std::string provider = "vsphere";
    std::string config;
    ConnectionFlags conn;

    bool request(nlohmann::json &out, std::string &error) const {
        nlohmann::json config = provider == "vsphere" ? conn.request() : nlohmann::json::object();
        if (!this->config.empty()) {
            nlohmann::json given;
            if (!read_json_argument("--config", this->config, given, error)) return false;
            if (!given.is_object()) {
                error = "--config: expected a JSON object";
                return false;
            }
            config.update(given);
        }
        out = nlohmann::json{{"provider", provider}, {"config", std::move(config)}};
        return true;
    }
};

void add_provider_flags(CLI::App *app, ProviderFlags &f);

}  // namespace hsdk
