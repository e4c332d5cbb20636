#include <hypersdk/hash.hpp>

#include <openssl/evp.h>


#include <algorithm>
#include <cctype>

#include <fcntl.h>

namespace hypersdk {

struct Digest::State {
    EVP_MD_CTX *ctx = nullptr;
    ~State() { EVP_MD_CTX_free(ctx); }
};

namespace {
const EVP_MD *md_for(DigestAlgorithm a) {
    switch (a) {
    case DigestAlgorithm::sha1: return EVP_sha1();
    case DigestAlgorithm::sha512: return EVP_sha512();
    case DigestAlgorithm::sha256: break;
    }
    return EVP_sha256();
}
}  // namespace

Digest::Digest(DigestAlgorithm algorithm) : algorithm_(algorithm), state_(std::make_unique<State>()) {
    state_->ctx = EVP_MD_CTX_new();
    if (state_->ctx == nullptr) throw std::bad_alloc();
    reset();
}
Digest::~Digest() = default;
Digest::Digest(Digest &&) noexcept = default;
Digest &Digest::operator=(Digest &&) noexcept = default;

void Digest::reset() {
    if (EVP_DigestInit_ex(state_->ctx, md_for(algorithm_), nullptr) != 1) throw std::runtime_error("EVP_DigestInit_ex failed");
}

void Digest::update(std::span<const std::byte> data) {
    if (!data.empty()) EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

void Digest::update(std::string_view data) {
    if (!data.empty()) EVP_DigestUpdate(state_->ctx, data.data(), data.size());
}

std::vector<std::uint8_t> Digest::finish() {
    std::vector<std::uint8_t> out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    EVP_DigestFinal_ex(state_->ctx, out.data(), &len);
    out.resize(len);
    reset();
    return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 15]);
    }
    return s;
}

std::string sha256_hex(std::string_view data) {
    Digest d(DigestAlgorithm::sha256);
    d.update(data);
    auto raw = d.finish();
    return to_hex(raw);
}

std::string_view digest_name(DigestAlgorithm algorithm) noexcept {
    switch (algorithm) {
    case DigestAlgorithm::sha1: return "SHA1";
    case DigestAlgorithm::sha512: return "SHA512";
    case DigestAlgorithm::sha256: break;
    }
    return "SHA256";
}

std::optional<DigestAlgorithm> digest_from_name(std::string_view name) noexcept {
    auto eq = [&](std::string_view w) {
        if (name.size() != w.size()) return false;
        for (std::size_t i = 0; i < w.size(); ++i)
            if (std::toupper(static_cast<unsigned char>(name[i])) != w[i]) return false;
        return true;
    };
    if (eq("SHA1")) return DigestAlgorithm::sha1;
    if (eq("SHA256")) return DigestAlgorithm::sha256;
    if (eq("SHA512")) return DigestAlgorithm::sha512;
    return std::nullopt;
}

}  // namespace hypersdk
