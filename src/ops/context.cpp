#include "ops/context.hpp"

#include <fmt/format.h>

#include <fstream>

namespace hypersdk::ops {

std::string str(const nlohmann::json &r, std::string_view key) {
    auto it = r.find(key);
    return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::string> opt_str(const nlohmann::json &r, std::string_view key) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

bool flag(const nlohmann::json &r, std::string_view key, bool fallback) {
    auto it = r.find(key);
    return it != r.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::uint64_t u64(const nlohmann::json &r, std::string_view key, std::uint64_t fallback) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_number_integer() || it->get<std::int64_t>() < 0) return fallback;
    return it->get<std::uint64_t>();
}

Result<FormatOptions> format_options(const nlohmann::json &r, std::string_view key) {
    auto it = r.find(key);
    if (it == r.end() || it->is_null()) return FormatOptions{};
    if (it->is_string()) return parse_format_options(it->get<std::string>());
    FormatOptions out;
    for (const auto &[name, value] : it->items()) {
        if (value.is_boolean()) out.emplace_back(name, value.get<bool>() ? "on" : "off");
        else if (value.is_string()) out.emplace_back(name, value.get<std::string>());
        else if (value.is_number_integer()) out.emplace_back(name, value.dump());
        else return fail(Errc::invalid_argument, fmt::format("/{}/{}: expected a string, integer or boolean", key, name));
    }
    return out;
}

namespace {

// "Name: value" lines of a file; blank lines and lines starting with # are skipped.
Result<std::vector<std::string>> read_header_file(const std::string &path) {
    std::ifstream in(path);
    if (!in) return fail(Errc::not_found, fmt::format("/headers_file: cannot read '{}'", path));
    std::vector<std::string> headers;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line.front() == '#') continue;
        const auto colon = line.find(':');
        if (colon == 0 || colon == std::string::npos)
            return fail(Errc::invalid_argument,
                        fmt::format("/headers_file: line {} of '{}' is not 'Name: value'", headers.size() + 1, path));
        headers.push_back(line);
    }
    return headers;
}

}  // namespace

std::vector<std::string> string_list(const nlohmann::json &r, std::string_view key) {
    std::vector<std::string> out;
    auto it = r.find(key);
    if (it == r.end()) return out;
    if (it->is_string()) out.push_back(it->get<std::string>());
    else if (it->is_array())
        for (const auto &v : *it)
            if (v.is_string()) out.push_back(v.get<std::string>());
    return out;
}

bool native_compress(const nlohmann::json &r) { return flag(r, "compress"); }

CompressionOptions stream_compression(const nlohmann::json &r) {
    CompressionOptions c;
    if (auto it = r.find("compress"); it != r.end() && it->is_string()) c.method = it->get<std::string>();
    c.level = static_cast<int>(u64(r, "compress_level"));
    return c;
}

std::optional<EncryptionOptions> encryption_options(const nlohmann::json &r) {
    auto it = r.find("encrypt");
    if (it == r.end()) return std::nullopt;
    const bool object = it->is_object();
    if (!object && !(it->is_boolean() && it->get<bool>())) return std::nullopt;
    const nlohmann::json &keys = object ? *it : r;
    return encryption_keys(keys, object && keys.contains("method") ? "method" : "encrypt_method");
}

EncryptionOptions encryption_keys(const nlohmann::json &keys, std::string_view method_key) {
    EncryptionOptions e;
    e.method = keys.value(method_key, std::string("aes-256-gcm"));
    e.passphrase_file = keys.value("passphrase_file", "");
    e.passphrase_env = keys.value("passphrase_env", "");
    e.key_file = keys.value("key_file", "");
    e.recipients = string_list(keys, "recipient");
    e.gpg_recipients = string_list(keys, "gpg_recipient");
    e.gpg_home = keys.value("gpg_home", "");
    return e;
}

nlohmann::json to_json(const EncryptionRecord &record) {
    return {{"method", record.method}, {"key", record.key}, {"recipients", record.recipients}};
}

Result<OpenOptions> open_options(const Context &c, std::string_view format_key) {
    const auto &r = c.request();
    OpenOptions o;
    o.format = str(r, format_key);
    o.allow_external_files = flag(r, "allow_external_files");
    o.open_backing = flag(r, "open_backing", true);
    if (auto h = r.find("headers"); h != r.end() && h->is_array())
        for (const auto &v : *h) o.http.headers.push_back(v.get<std::string>());
    if (auto file = opt_str(r, "headers_file")) {
        HSDK_TRY(auto more, read_header_file(*file));
        o.http.headers.insert(o.http.headers.end(), more.begin(), more.end());
    }
    o.http.insecure = flag(r, "insecure");
    o.http.ca_file = str(r, "ca_file");
    o.http.timeout_seconds = static_cast<unsigned>(u64(r, "timeout", 60));
    o.http.cancel = c.cancel();
    if (auto a = r.find("aws"); a != r.end() && a->is_object()) {
        o.http.aws_profile = a->value("profile", "");
        o.http.aws_region = a->value("region", "");
        o.http.aws_endpoint_url = a->value("endpoint_url", "");
        o.http.block_requests = a->value("requests_in_flight", 64u);
        o.http.aws_max_attempts = a->value("max_attempts", 0u);
    }
    if (auto d = r.find("decrypt"); d != r.end() && d->is_object()) {
        o.http.passphrase_file = d->value("passphrase_file", "");
        o.http.passphrase_env = d->value("passphrase_env", "");
        o.http.key_file = d->value("key_file", "");
        o.http.identity_files = string_list(*d, "identity");
        o.http.gpg_home = d->value("gpg_home", "");
    }
    if (auto g = r.find("gcs"); g != r.end() && g->is_object()) {
        o.http.gcp_storage_endpoint = g->value("storage_endpoint", "");
        o.http.gcp_credentials_file = g->value("credentials_file", "");
        o.http.gcp_token_uri = g->value("token_uri", "");
    }
    return o;
}

}  // namespace hypersdk::ops
