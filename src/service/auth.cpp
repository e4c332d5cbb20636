#include "service/auth.hpp"

#include "service/util.hpp"

#include <hypersdk/log.hpp>

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace hypersdk::service {
namespace {

constexpr auto session_lifetime = std::chrono::hours(24);

std::string auth_hex(const unsigned char *p, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += fmt::format("{:02x}", p[i]);
    return s;
}

std::string pbkdf2_hex(const std::string &password, const std::string &salt, int iterations) {
    unsigned char out[32];
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), reinterpret_cast<const unsigned char *>(salt.data()),
                      static_cast<int>(salt.size()), iterations, EVP_sha256(), sizeof out, out);
    return auth_hex(out, sizeof out);
}

std::string bearer(const Request &request) {
    const auto value = header(request, "authorization");
    if (value.size() > 7 && (value.rfind("Bearer ", 0) == 0 || value.rfind("bearer ", 0) == 0)) return value.substr(7);
    return {};
}

}  // namespace

std::string_view role_name(Role role) noexcept {
    switch (role) {
        case Role::read: return "read";
        case Role::operate: return "operate";
        case Role::admin: return "admin";
    }
    return "read";
}

std::optional<Role> parse_role(std::string_view name) noexcept {
    if (name == "read" || name == "viewer" || name == "readonly") return Role::read;
    if (name == "operate" || name == "operator") return Role::operate;
    if (name == "admin") return Role::admin;
    return std::nullopt;
}

std::string hash_password(const std::string &password) {
    unsigned char salt[16];
    RAND_bytes(salt, sizeof salt);
    const std::string salt_hex = auth_hex(salt, sizeof salt);
    constexpr int iterations = 200000;
    return fmt::format("pbkdf2-sha256:{}:{}:{}", iterations, salt_hex, pbkdf2_hex(password, salt_hex, iterations));
}

bool verify_password(const std::string &password, const std::string &hash) {
    // pbkdf2-sha256:<iterations>:<salt>:<hex>
    const auto a = hash.find(':'), b = hash.find(':', a + 1), c = hash.find(':', b + 1);
    if (hash.compare(0, a, "pbkdf2-sha256") != 0 || b == std::string::npos || c == std::string::npos) return false;
    int iterations = 0;
    try {
        iterations = std::stoi(hash.substr(a + 1, b - a - 1));
    } catch (...) {
        return false;
    }
    if (iterations < 1000 || iterations > 10000000) return false;
    return constant_time_equal(pbkdf2_hex(password, hash.substr(b + 1, c - b - 1), iterations), hash.substr(c + 1));
}

void Auth::reload(const Config &config) {
    std::lock_guard lock(mutex_);
    required_ = config.auth_required;
    keys_ = config.api_keys;
    users_ = config.users;
}

std::optional<Principal> Auth::identify(const Request &request) {
    std::string presented = header(request, "x-api-key");
    if (presented.empty()) presented = bearer(request);
    if (presented.empty()) return std::nullopt;
    std::lock_guard lock(mutex_);
    for (const auto &k : keys_)
        if (constant_time_equal(presented, k.key)) return Principal{k.name, k.role};
    const auto it = sessions_.find(presented);
    if (it != sessions_.end()) {
        if (it->second.expires > std::chrono::system_clock::now()) return Principal{it->second.user, it->second.role};
        sessions_.erase(it);
    }
    return std::nullopt;
}

std::optional<Response> Auth::check(const Request &request, Role needed, Principal &who) {
    auto found = identify(request);
    bool required;
    {
        std::lock_guard lock(mutex_);
        required = required_;
    }
    if (!found) {
        if (!required) {
            who = Principal{"anonymous", Role::admin};
            return std::nullopt;
        }
        const bool presented = !header(request, "x-api-key").empty() || !bearer(request).empty();
        auto r = error_response(401, presented ? "unauthorized: unknown API key or expired session" : "unauthorized: an API key (X-API-Key) or a session token (Authorization: Bearer) is required");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hypervisord\"");
        return r;
    }
    who = *found;
    if (static_cast<int>(who.role) < static_cast<int>(needed))
        return error_response(403, fmt::format("forbidden: {} has role {}, this needs {}", who.name, role_name(who.role), role_name(needed)));
    return std::nullopt;
}

Response Auth::login(const std::string &username, const std::string &password) {
    std::lock_guard lock(mutex_);
    for (const auto &u : users_) {
        if (u.username != username) continue;
        const bool ok = !u.password_hash.empty() ? verify_password(password, u.password_hash)
                                                 : (!u.password.empty() && constant_time_equal(password, u.password));
        if (!ok) break;
        const std::string token = random_hex(32);
        const auto expires = std::chrono::system_clock::now() + session_lifetime;
        sessions_[token] = Session{u.username, u.role, expires};
        return json_response(200, {{"token", token}, {"expires_at", rfc3339(expires)}, {"role", role_name(u.role)}, {"username", u.username}});
    }
    return error_response(401, "unauthorized: wrong user name or password");
}

void Auth::logout(const Request &request) {
    const auto token = bearer(request);
    std::lock_guard lock(mutex_);
    sessions_.erase(token);
}

AuditLog::AuditLog(const std::string &path) {
    if (path.empty()) return;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) log(LogLevel::error, fmt::format("cannot open the audit log {}: {}", path, std::strerror(errno)));
}

AuditLog::~AuditLog() {
    if (fd_ >= 0) ::close(fd_);
}

void AuditLog::write(const nlohmann::json &entry) {
    if (fd_ < 0) return;
    // One write() per line: O_APPEND keeps lines whole even with other writers.
    const std::string line = entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::lock_guard lock(mutex_);
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        log(LogLevel::error, "audit log write failed");
}

}  // namespace hypersdk::service
