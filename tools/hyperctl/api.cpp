#include "api.hpp"

#include <cmath>

namespace hyperctl {

namespace {

const char *reason_phrase(long status) {
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "";
    }
}

std::string first_line(const std::string &text) {
    std::string line = text.substr(0, text.find('\n'));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    constexpr std::size_t limit = 300;
    if (line.size() > limit) line = line.substr(0, limit) + "...";
    return line;
}

}  // namespace

std::string daemon_error_text(const HttpResponse &response) {
    auto parsed = nlohmann::json::parse(response.body, nullptr, false);
    if (parsed.is_object()) {
        if (auto it = parsed.find("error"); it != parsed.end()) {
            if (it->is_string()) return it->get<std::string>();
            if (it->is_object() && it->contains("message") && (*it)["message"].is_string())
                return (*it)["message"].get<std::string>();
        }
        if (auto it = parsed.find("message"); it != parsed.end() && it->is_string()) return it->get<std::string>();
    }
    return first_line(response.body);
}

nlohmann::json expect_json(const DaemonClient &client, const HttpResponse &response, const std::string &what) {
    if (response.status < 200 || response.status > 299) {
        std::string message = what + ": hypervisord at " + client.url() + " answered " + std::to_string(response.status);
        if (const char *reason = reason_phrase(response.status); *reason) message += std::string(" ") + reason;
        if (std::string text = daemon_error_text(response); !text.empty()) message += ": " + text;
        if (response.status == 401 || response.status == 403) {
            message += client.has_api_key() ? " (check the API key given by -api-key or HYPERSDK_API_KEY)"
                                            : " (give an API key with -api-key or HYPERSDK_API_KEY)";
        }
        throw ApiError(response.status, message);
    }
    auto parsed = nlohmann::json::parse(response.body, nullptr, false);
    if (parsed.is_discarded()) {
        throw ApiError(response.status, what + ": hypervisord at " + client.url() +
                                            " did not answer with JSON: " + first_line(response.body));
    }
    return parsed;
}

std::string json_string(const nlohmann::json &object, const char *key, const std::string &fallback) {
    if (!object.is_object()) return fallback;
    auto it = object.find(key);
    if (it == object.end() || !it->is_string()) return fallback;
    return it->get<std::string>();
}

long long json_int(const nlohmann::json &object, const char *key, long long fallback) {
    if (!object.is_object()) return fallback;
    auto it = object.find(key);
    if (it == object.end()) return fallback;
    if (it->is_number_integer()) return it->get<long long>();
    if (it->is_number_unsigned()) return static_cast<long long>(it->get<unsigned long long>());
    if (it->is_number_float()) return std::llround(it->get<double>());
    return fallback;
}

double json_number(const nlohmann::json &object, const char *key, double fallback) {
    if (!object.is_object()) return fallback;
    auto it = object.find(key);
    if (it == object.end() || !it->is_number()) return fallback;
    return it->get<double>();
}

}  // namespace hyperctl
