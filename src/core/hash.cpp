#include <hypersdk/hash.hpp>

#include <openssl/evp.h>

#include "io/file.hpp"

#include <fcntl.h>

namespace hypersdk {

struct Digest::State {
    EVP_MD_CTX *ctx = nullptr;
    ~State() { EVP_MD_CTX_free(ctx); }
};

namespace {
const EVP_MD *md_for(DigestAlgorithm a) { return a == DigestAlgorithm::sha1 ? EVP_sha1() : EVP_sha256(); }
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
    return algorithm == DigestAlgorithm::sha1 ? "SHA1" : "SHA256";
}

Result<std::string> file_digest_hex(const std::string &path, DigestAlgorithm algorithm, const CancelToken &cancel) {
    HSDK_TRY(auto file, io::File::open_read(path));
    ::posix_fadvise(file.fd(), 0, 0, POSIX_FADV_SEQUENTIAL);
    Digest d(algorithm);
    std::vector<std::byte> buf(1 << 20);
    for (std::uint64_t offset = 0;;) {
        HSDK_TRYV(cancel.check());
        HSDK_TRY(auto n, file.read_some(offset, buf));
        if (n == 0) break;
        d.update(std::span<const std::byte>(buf.data(), n));
        offset += n;
    }
    auto raw = d.finish();
    return to_hex(raw);
}

}  // namespace hypersdk
