// hypervisord's JSON answers (docs/daemon-routes.md): reading them, and turning a refusal into one
// clear sentence.
#pragma once

#include "http_client.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace hyperctl {

// The daemon answered, but not with what was asked for (a status outside 2xx, or no JSON).
class ApiError : public std::runtime_error {
public:
    ApiError(long status, const std::string &message) : std::runtime_error(message), status_(status) {}
    long status() const { return status_; }

private:
    long status_;
};

// The `error` of a JSON error body ({error, timestamp}), else the body's first line.
std::string daemon_error_text(const HttpResponse &response);

// The JSON of a 2xx answer to `what` ("GET /status"); ApiError otherwise, naming the daemon's URL,
// the status and the daemon's message (with a hint about -api-key on 401/403).
nlohmann::json expect_json(const DaemonClient &client, const HttpResponse &response, const std::string &what);

// Tolerant field readers: a missing, null or differently typed field gives the fallback.
std::string json_string(const nlohmann::json &object, const char *key, const std::string &fallback = {});
long long json_int(const nlohmann::json &object, const char *key, long long fallback = 0);
double json_number(const nlohmann::json &object, const char *key, double fallback = 0.0);

}  // namespace hyperctl
