#include "service/util.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

namespace hypersdk::service {

std::string rfc3339(TimePoint t) {
    return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(Clock::to_time_t(t)));
}

std::string go_duration(double seconds) {
    if (!(seconds > 0)) return "0s";
    auto total = static_cast<std::uint64_t>(std::llround(seconds));
    const auto h = total / 3600, m = (total % 3600) / 60, s = total % 60;
    if (h) return fmt::format("{}h{}m{}s", h, m, s);
    if (m) return fmt::format("{}m{}s", m, s);
    return fmt::format("{}s", s);
}

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char *>(raw.data()), static_cast<int>(bytes)) != 1)
        throw std::runtime_error("RAND_bytes failed");
    std::string out;
    out.reserve(bytes * 2);
    for (unsigned char c : raw) out += fmt::format("{:02x}", c);
    return out;
}

std::string new_uuid() {
    std::array<unsigned char, 16> b{};
    if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw std::runtime_error("RAND_bytes failed");
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    std::string s;
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
        s += fmt::format("{:02x}", b[i]);
    }
    return s;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    // Always walks the longer string so the time says nothing about where they first differ.
    const std::size_t n = std::max(a.size(), b.size());
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (std::size_t i = 0; i < n; ++i) {
        const auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        const auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned char>(x ^ y);
    }
    return diff == 0;
}

Response json_response(int status, const nlohmann::json &body) {
    Response r;
    r.status = status;
    r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
}

Response error_response(int status, std::string_view message) {
    return json_response(status, {{"error", message}, {"timestamp", rfc3339(Clock::now())}});
}

Response text_response(int status, std::string body, std::string content_type) {
    Response r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    return r;
}

std::string url_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

Target parse_target(std::string_view target) {
    Target t;
    const auto q = target.find('?');
    t.path = url_decode(target.substr(0, q));
    if (q == std::string_view::npos) return t;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (!pair.empty())
            t.query[url_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        rest = rest.substr(amp + 1);
    }
    return t;
}

bool is_secret_key(std::string_view key) {
    std::string k(key);
    for (auto &c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char *word : {"password", "secret", "token", "sas", "credential", "authorization", "api_key", "apikey",
                             "private_key", "access_key", "passphrase"})
        if (k.find(word) != std::string::npos) return true;
    return k == "key";
}

nlohmann::json redact_secrets(const nlohmann::json &value) {
    if (value.is_array()) {
        auto out = nlohmann::json::array();
        for (const auto &v : value) out.push_back(redact_secrets(v));
        return out;
    }
    if (!value.is_object()) return value;
    auto out = nlohmann::json::object();
    for (const auto &[k, v] : value.items()) {
        if (k == "headers" && v.is_object()) {
            auto h = nlohmann::json::object();
            for (const auto &[hk, hv] : v.items()) h[hk] = "********";
            out[k] = std::move(h);
        } else if (is_secret_key(k) && !v.is_null() && !v.is_boolean() && !(k.ends_with("_env") || k.ends_with("_file"))) {
            out[k] = "********";
        } else {
            out[k] = redact_secrets(v);
        }
    }
    return out;
}

namespace {

nlohmann::json yaml_to_json(const YAML::Node &node) {
    switch (node.Type()) {
        case YAML::NodeType::Map: {
            auto o = nlohmann::json::object();
            for (const auto &kv : node) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
            return o;
        }
        case YAML::NodeType::Sequence: {
            auto a = nlohmann::json::array();
            for (const auto &v : node) a.push_back(yaml_to_json(v));
            return a;
        }
        case YAML::NodeType::Scalar: {
            const auto &s = node.Scalar();
            if (node.Tag() == "!") return s;  // quoted: a string, whatever it looks like
            if (s == "true" || s == "True" || s == "yes") return true;
            if (s == "false" || s == "False" || s == "no") return false;
            if (s == "null" || s == "~") return nullptr;
            if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
                try {
                    std::size_t used = 0;
                    const long long v = std::stoll(s, &used);
                    if (used == s.size()) return v;
                    const double d = std::stod(s, &used);
                    if (used == s.size()) return d;
                } catch (...) {
                }
            }
            return s;
        }
        default:
            return nullptr;
    }
}

}  // namespace

nlohmann::json yaml_text_to_json(const std::string &text) { return yaml_to_json(YAML::Load(text)); }

std::string header(const Request &request, std::string_view name) {
    const auto it = request.headers.find(std::string(name));
    return it == request.headers.end() ? std::string() : it->second;
}

ParsedBody parse_body(const Request &request) {
    ParsedBody out;
    if (request.body.find_first_not_of(" \t\r\n") == std::string::npos) {
        out.value = nlohmann::json::object();
        return out;
    }
    const auto type = header(request, "content-type");
    const bool yaml = type.find("yaml") != std::string::npos;
    if (!yaml) {
        out.value = nlohmann::json::parse(request.body, nullptr, false);
        if (!out.value.is_discarded()) return out;
    }
    try {
        out.value = yaml_text_to_json(request.body);
        if (out.value.is_object() || out.value.is_array()) return out;
    } catch (const std::exception &) {
    }
    out.value = nullptr;
    out.error = yaml ? "invalid request: the body is not valid YAML" : "invalid request: the body is not valid JSON";
    return out;
}

}  // namespace hypersdk::service
