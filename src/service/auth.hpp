// Who may call what: API keys (X-API-Key or Authorization: Bearer <key>) and login sessions
// (POST /api/login → token, sent as Bearer), each with a role - read < operate < admin. And the
// audit log: one JSON line for every mutating request, whoever made it and whatever it answered.
#pragma once

#include <hypersdk/service.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace hypersdk::service {

struct Principal {
    std::string name;  // key name or user name; "anonymous" without auth
    Role role = Role::admin;
};

std::string_view role_name(Role role) noexcept;
std::optional<Role> parse_role(std::string_view name) noexcept;

class Auth {
public:
    explicit Auth(const Config &config) { reload(config); }
    void reload(const Config &config);

    // The caller's principal, or the 401 (no or unknown credentials) / 403 (role below `needed`).
    std::optional<Response> check(const Request &request, Role needed, Principal &who);
    // {token, expires_at, role}, or a 401.
    Response login(const std::string &username, const std::string &password);
    void logout(const Request &request);

private:
    struct Session {
        std::string user;
        Role role;
        std::chrono::system_clock::time_point expires;
    };
    std::optional<Principal> identify(const Request &request);

    std::mutex mutex_;
    bool required_ = true;
    std::vector<ApiKey> keys_;
    std::vector<User> users_;
    std::map<std::string, Session> sessions_;
};

// Hashes a password for `users[].password_hash`: "pbkdf2-sha256:<iterations>:<salt hex>:<hash hex>".
std::string hash_password(const std::string &password);
bool verify_password(const std::string &password, const std::string &hash);

class AuditLog {
public:
    explicit AuditLog(const std::string &path);
    ~AuditLog();
    AuditLog(const AuditLog &) = delete;
    AuditLog &operator=(const AuditLog &) = delete;
    void write(const nlohmann::json &entry);

private:
    std::mutex mutex_;
    int fd_ = -1;
};

}  // namespace hypersdk::service
