// The service: the REST surface of hypervisord (the routes the existing daemon and its SDK clients
// use, plus /v1/ops/{operation}, /openapi.json and /metrics) as a transport-free request handler over
// the operation registry and jobs. The daemon (tools/hypervisord) puts an HTTP/WebSocket server in
// front of it; the Python and Node `HyperSDK()` clients without a URL call it in-process. Jobs,
// their log lines, schedules and webhooks are kept in SQLite (WAL), written before a request is
// answered.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hypersdk::service {

struct Request {
    std::string method;                         // "GET", "POST", ...
    std::string target;                         // path and query: "/jobs/query?all=true"
    std::map<std::string, std::string> headers; // names in lower case
    std::string body;
    std::string peer;                           // remote address (for the audit log), "" in-process
    // Set by the server for requests on its --metrics-listen address: /metrics needs no
    // credentials there (scrapers inside the cluster), on the main address it needs the read role.
    bool metrics_port = false;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

enum class Role { read = 0, operate = 1, admin = 2 };

struct ApiKey {
    std::string name;
    std::string key;  // compared in constant time; never logged
    Role role = Role::read;
};

struct User {
    std::string username;
    std::string password;  // or password_hash ("sha256:<salt>:<hex>")
    std::string password_hash;
    Role role = Role::read;
};

struct Config {
    // SQLite database; "" keeps everything in memory (the in-process client).
    std::string database_path;
    // Where the audit log, the credential key file and default outputs live ("" = none).
    std::string state_dir;
    unsigned workers = 4;          // jobs running at once (daemon.workers)
    unsigned per_host_limit = 0;   // jobs at once against one provider host; 0 = no limit
    // providers.<name>.* from the config file (vsphere: host/url, username, password, insecure, ...).
    nlohmann::json providers = nlohmann::json::object();
    nlohmann::json export_defaults = nlohmann::json::object();  // export.*
    nlohmann::json hyper2kvm = nlohmann::json::object();        // hyper2kvm.*
    nlohmann::json webhooks = nlohmann::json::array();          // webhooks[] from the config file
    nlohmann::json scheduler = nlohmann::json::object();        // retry_base_seconds, retry_cap_seconds
    std::string webhook_secret;    // HMAC key of X-HyperSDK-Signature ("" = one generated and kept)
    bool auth_required = true;     // false only with --no-auth on a loopback address
    std::vector<ApiKey> api_keys;
    std::vector<User> users;
    std::string audit_log_path;    // JSON lines of every mutating request ("" = none)
    std::string credential_key_file;  // key that encrypts stored provider credentials
    std::string version_suffix;    // shown after the version in /health (tests)
};

// The daemon's config file (YAML or JSON) as JSON, every "${VAR}" in a string replaced by the
// environment variable (an unset one is an error naming it).
Result<nlohmann::json> read_config_document(const std::string &path);
// The service's part of a config document: database.path, daemon.workers|export.concurrent_exports,
// daemon.state_dir, providers.*, export.*, hyper2kvm.*, webhooks[], webhook_secret, auth{api_keys[],
// users[], required}, audit_log, scheduler.*. API keys shorter than 16 characters are refused.
Result<Config> service_config(const nlohmann::json &document);

// One message of the WebSocket stream: {type, timestamp, data}.
using EventSink = std::function<void(const std::string &message)>;

class Service {
public:
    virtual ~Service() = default;
    // Opens the database (creating it), marks jobs left running by an earlier process failed
    // ("interrupted by restart"), starts the scheduler and the webhook sender.
    static Result<std::unique_ptr<Service>> open(Config config);

    // Any route. Never throws; unknown routes are 404 {error, timestamp}.
    virtual Response handle(const Request &request) = 0;

    // Checks the credentials of a WebSocket upgrade (headers, or ?access_token= as browsers must
    // send it): nullptr when allowed, else the 401/403 response.
    virtual std::unique_ptr<Response> authorize(const Request &request) = 0;

    // WebSocket clients: the sink gets every status/jobs/job_update message until unsubscribed.
    virtual std::uint64_t subscribe(EventSink sink) = 0;
    virtual void unsubscribe(std::uint64_t id) = 0;
    // The first messages a new WebSocket client gets ({type:"status"} and {type:"jobs"}).
    virtual std::vector<std::string> welcome_messages() = 0;

    // SIGHUP: new providers, webhooks, keys and limits; jobs and schedules stay.
    virtual void reload(Config config) = 0;
    // Stops the scheduler, cancels running jobs (they are marked as interrupted) and closes the database.
    virtual void shutdown() = 0;
};

// The process's own service for in-process clients (Python and Node `HyperSDK()` without a URL, the
// C ABI's hsdk_service_request): an in-memory database, no authentication, providers from the
// environment (GOVC_* and the clouds' usual variables). Opened at first use; lives until exit.
Result<Service *> in_process_service();

}  // namespace hypersdk::service
