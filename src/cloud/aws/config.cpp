#include "cloud/aws/config.hpp"
#include "core/env.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace hypersdk::cloud::aws {
namespace {

using core::env;

std::string trim(const std::string &s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string upper(std::string s) {
    for (auto &c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// An INI file as section -> key -> value. Nested "services" blocks and comments are skipped; a
// missing file is an empty one.
using Ini = std::map<std::string, std::map<std::string, std::string>>;

Ini read_ini(const std::string &path) {
    Ini out;
    std::ifstream in(path);
    std::string line, section;
    while (std::getline(in, line)) {
        const std::string t = trim(line);
        if (t.empty() || t[0] == '#' || t[0] == ';') continue;
        if (t.front() == '[' && t.back() == ']') {
            section = trim(t.substr(1, t.size() - 2));
            continue;
        }
        const auto eq = t.find('=');
        if (eq == std::string::npos || line.find_first_not_of(" \t") != 0) continue;  // indented: a nested block
        out[section][trim(t.substr(0, eq))] = trim(t.substr(eq + 1));
    }
    return out;
}

std::string home_file(const char *variable, const char *name) {
    if (auto v = env(variable); !v.empty()) return v;
    const std::string home = env("HOME");
    return home.empty() ? std::string() : home + "/.aws/" + name;
}

bool valid_region(const std::string &r) {
    return !r.empty() && r.size() < 64 &&
           std::all_of(r.begin(), r.end(), [](char c) { return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-'; });
}

}  // namespace

std::string Config::endpoint(const std::string &service) const {
    if (auto it = service_endpoints.find(service); it != service_endpoints.end() && !it->second.empty()) return it->second;
    if (!endpoint_url.empty()) return endpoint_url;
    return fmt::format("https://{}.{}.amazonaws.com", service, region);
}

bool Config::custom_endpoint(const std::string &service) const {
    if (auto it = service_endpoints.find(service); it != service_endpoints.end() && !it->second.empty()) return true;
    return !endpoint_url.empty();
}

Result<Config> resolve_config(const ConfigInput &input) {
    Config c;
    c.profile = !input.profile.empty() ? input.profile : env("AWS_PROFILE");
    const bool profile_named = !c.profile.empty();
    if (c.profile.empty()) c.profile = "default";

    const std::string credentials_file = home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    const std::string config_file = home_file("AWS_CONFIG_FILE", "config");
    const Ini creds_ini = credentials_file.empty() ? Ini{} : read_ini(credentials_file);
    const Ini config_ini = config_file.empty() ? Ini{} : read_ini(config_file);
    const std::string config_section = c.profile == "default" ? "default" : "profile " + c.profile;
    const auto *profile_creds = creds_ini.count(c.profile) ? &creds_ini.at(c.profile) : nullptr;
    const auto *profile_config = config_ini.count(config_section) ? &config_ini.at(config_section) : nullptr;
    if (profile_named && profile_creds == nullptr && profile_config == nullptr)
        return fail(Errc::invalid_argument, fmt::format("AWS profile '{}' is in neither {} nor {}", c.profile,
                                                        credentials_file, config_file));
    auto from_profile = [&](const char *key) -> std::string {
        if (profile_creds != nullptr)
            if (auto it = profile_creds->find(key); it != profile_creds->end()) return it->second;
        if (profile_config != nullptr)
            if (auto it = profile_config->find(key); it != profile_config->end()) return it->second;
        return {};
    };

    // Credentials: options, then the environment (unless a profile was asked for by name, as the
    // CLI does with --profile), then the profile.
    if (!input.credentials.empty()) {
        c.credentials = input.credentials;
        c.credentials_source = "options";
    } else if (!env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty() && input.profile.empty()) {
        c.credentials = {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
        c.credentials_source = "environment";
    } else if (!from_profile("aws_access_key_id").empty() && !from_profile("aws_secret_access_key").empty()) {
        c.credentials = {from_profile("aws_access_key_id"), from_profile("aws_secret_access_key"), from_profile("aws_session_token")};
        c.credentials_source = fmt::format("profile {}", c.profile);
    } else {
        return fail(Errc::auth_failed,
                    fmt::format("no AWS credentials: none given, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set, and "
                                "profile '{}' has no aws_access_key_id / aws_secret_access_key in {}",
                                c.profile, credentials_file.empty() ? "~/.aws/credentials" : credentials_file));
    }

    c.region = input.region;
    if (c.region.empty()) c.region = env("AWS_REGION");
    if (c.region.empty()) c.region = env("AWS_DEFAULT_REGION");
    if (c.region.empty()) c.region = from_profile("region");
    if (c.region.empty())
        return fail(Errc::invalid_argument, "no AWS region: give --region, set AWS_REGION (or AWS_DEFAULT_REGION), or "
                                            "set region in the profile");
    if (!valid_region(c.region)) return fail(Errc::invalid_argument, fmt::format("'{}' is not an AWS region name", c.region));

    c.endpoint_url = !input.endpoint_url.empty() ? input.endpoint_url : env("AWS_ENDPOINT_URL");
    if (c.endpoint_url.empty()) c.endpoint_url = from_profile("endpoint_url");
    for (const char *service : {"ec2", "ebs", "s3"}) {
        std::string url;
        if (auto it = input.service_endpoints.find(service); it != input.service_endpoints.end()) url = it->second;
        if (url.empty()) url = env(("AWS_ENDPOINT_URL_" + upper(service)).c_str());
        if (!url.empty()) c.service_endpoints[service] = url;
    }
    auto strip = [](std::string &u) {
        while (!u.empty() && u.back() == '/') u.pop_back();
    };
    strip(c.endpoint_url);
    for (auto &[_, u] : c.service_endpoints) strip(u);
    for (const auto &u : {c.endpoint_url}) {
        if (!u.empty() && u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
            return fail(Errc::invalid_argument, fmt::format("endpoint '{}' is not an http:// or https:// URL", u));
    }
    for (const auto &[s, u] : c.service_endpoints)
        if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
            return fail(Errc::invalid_argument, fmt::format("{} endpoint '{}' is not an http:// or https:// URL", s, u));
    return c;
}

}  // namespace hypersdk::cloud::aws
