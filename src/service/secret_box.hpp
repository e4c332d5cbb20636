// Provider credentials and other secrets the service must keep (a scheduled job's vCenter password,
// a webhook's headers) are sealed with AES-256-GCM before they reach the database. The key lives
// in a file of its own (mode 0600, outside the database), so a copy of the database alone reveals
// nothing; without a key file (the in-process client) the key lives only in memory.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <string>

namespace hypersdk::service {

class SecretBox {
public:
    // Reads the key file, creating it (32 random bytes, 0600) when missing; "" = a key in memory.
    static Result<SecretBox> open(const std::string &key_file);
    // "v1." + base64(nonce | tag | ciphertext); "" for null.
    [[nodiscard]] Result<std::string> seal(const nlohmann::json &secret) const;
    [[nodiscard]] Result<nlohmann::json> unseal(const std::string &sealed) const;

private:
    std::array<unsigned char, 32> key_{};
};

}  // namespace hypersdk::service
