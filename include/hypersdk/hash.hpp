// Message digests via OpenSSL (SHA-256 for manifests and verification, SHA-1 for old OVF manifests).
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk {

enum class DigestAlgorithm { sha1, sha256, sha512 };

class Digest {
public:
    explicit Digest(DigestAlgorithm algorithm);
    ~Digest();
    Digest(Digest &&) noexcept;
    Digest &operator=(Digest &&) noexcept;

    void update(std::span<const std::byte> data);
    void update(std::string_view data);
    // Finishes and returns the raw digest; the object may be reused after reset().
    std::vector<std::uint8_t> finish();
    void reset();
    [[nodiscard]] DigestAlgorithm algorithm() const noexcept { return algorithm_; }

private:
    struct State;
    DigestAlgorithm algorithm_;
    std::unique_ptr<State> state_;
};

std::string to_hex(std::span<const std::uint8_t> bytes);
std::string sha256_hex(std::string_view data);
// Streams the file through the digest; honours the token between blocks.
Result<std::string> file_digest_hex(const std::string &path, DigestAlgorithm algorithm,
                                    const CancelToken &cancel = {});
std::string_view digest_name(DigestAlgorithm algorithm) noexcept;  // "SHA256", "SHA1", "SHA512" as in .mf files
// "SHA1"/"SHA256"/"SHA512" (any case) -> algorithm.
std::optional<DigestAlgorithm> digest_from_name(std::string_view name) noexcept;

}  // namespace hypersdk
