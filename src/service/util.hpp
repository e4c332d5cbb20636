// Small pieces every part of the service uses: times and durations in the forms the existing
// daemon's clients parse, ids, error answers, query strings and the redaction of secrets.
#pragma once

#include <hypersdk/service.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <string>
#include <string_view>

namespace hypersdk::service {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// "2026-12-07T10:00:00Z" (seconds; the Go clients parse it with fromisoformat after replacing Z).
std::string rfc3339(TimePoint t);
// Go's time.Duration text: "1h2m3s", "45s", "0s" (what `uptime` and `estimated_remaining` show).
std::string go_duration(double seconds);
// A random version 4 UUID.
std::string new_uuid();
// n random bytes as lower-case hex (session tokens, generated secrets).
std::string random_hex(std::size_t bytes);
// Equal without leaking where they differ through timing.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// {error, timestamp} with the status code.
Response error_response(int status, std::string_view message);
Response json_response(int status, const nlohmann::json &body);
Response text_response(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");

struct Target {
    std::string path;                         // decoded, no query
    std::map<std::string, std::string> query; // decoded; a repeated key keeps the last value
};
Target parse_target(std::string_view target);
std::string url_decode(std::string_view text);

// A copy with the value of every key that names a secret (password, secret, token, key, sas,
// credential, authorization, headers' values) replaced by "********".
nlohmann::json redact_secrets(const nlohmann::json &value);
// True for a key redact_secrets hides.
bool is_secret_key(std::string_view key);

// Parses a body as JSON (or YAML when the content type says yaml, or when JSON fails and it looks
// like YAML): the value, or a message for a 400.
struct ParsedBody {
    nlohmann::json value;
    std::string error;  // empty on success
};
ParsedBody parse_body(const Request &request);

// YAML (a config file, a submitted job) as JSON: quoted scalars stay strings, plain ones that read
// as booleans or numbers become those. Throws YAML::Exception on bad YAML.
nlohmann::json yaml_text_to_json(const std::string &text);

// The header's value or "" (names are lower case).
std::string header(const Request &request, std::string_view name);

}  // namespace hypersdk::service
