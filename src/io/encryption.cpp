#include "io/encryption.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <mutex>
#include <random>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk::io {

// The one place that reads an EncryptionKey's secret (declared a friend in the header).
struct EnvelopeKeyAccess {
    static std::span<const unsigned char> secret(const EncryptionKey &key) noexcept { return key.secret_; }
};

namespace {

constexpr std::array<unsigned char, envelope_magic_size> envelope_magic = {'H', 'S', 'D', 'K', 'E', 'N', 'C', '\0'};
constexpr std::string_view envelope_hkdf_info = "hypersdk-enc v1";
constexpr std::size_t envelope_nonce_size = 12;
constexpr std::size_t envelope_max_passphrase_file = 64 * 1024;

// Header field offsets (docs/encryption.md, "Header").
constexpr std::size_t envelope_off_version = 8;
constexpr std::size_t envelope_off_kdf = 9;
constexpr std::size_t envelope_off_log2n = 10;
constexpr std::size_t envelope_off_reserved1 = 11;
constexpr std::size_t envelope_off_r = 12;
constexpr std::size_t envelope_off_p = 16;
constexpr std::size_t envelope_off_chunk_size = 20;
constexpr std::size_t envelope_off_salt = 24;
constexpr std::size_t envelope_off_prefix = 56;
constexpr std::size_t envelope_off_reserved2 = 63;
static_assert(envelope_off_salt + envelope_salt_size == envelope_off_prefix);
static_assert(envelope_off_prefix + envelope_nonce_prefix_size == envelope_off_reserved2);
static_assert(envelope_off_reserved2 + 1 == envelope_header_size);

using EnvelopeHeaderBytes = std::array<unsigned char, envelope_header_size>;

}  // namespace

// Types that the State structs below hold: outside the anonymous namespace, so that a unity build
// (where this file is not the main file) does not warn about members of internal linkage.
namespace envelope_detail {

// 32 secret bytes that are wiped when they go out of scope.
struct EnvelopeSecret32 {
    std::array<unsigned char, envelope_key_size> bytes{};
    EnvelopeSecret32() = default;
    EnvelopeSecret32(const EnvelopeSecret32 &) = delete;
    EnvelopeSecret32 &operator=(const EnvelopeSecret32 &) = delete;
    ~EnvelopeSecret32() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

struct EnvelopeCipherFree {
    void operator()(EVP_CIPHER *c) const noexcept { EVP_CIPHER_free(c); }
};
struct EnvelopeCipherCtxFree {
    void operator()(EVP_CIPHER_CTX *c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
struct EnvelopeKdfFree {
    void operator()(EVP_KDF *k) const noexcept { EVP_KDF_free(k); }
};
struct EnvelopeKdfCtxFree {
    void operator()(EVP_KDF_CTX *k) const noexcept { EVP_KDF_CTX_free(k); }
};
using EnvelopeCipherPtr = std::unique_ptr<EVP_CIPHER, EnvelopeCipherFree>;
using EnvelopeCipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, EnvelopeCipherCtxFree>;

}  // namespace envelope_detail

using envelope_detail::EnvelopeCipherCtxPtr;
using envelope_detail::EnvelopeKdfCtxFree;
using envelope_detail::EnvelopeKdfFree;
using envelope_detail::EnvelopeCipherPtr;
using envelope_detail::EnvelopeSecret32;

namespace {

const unsigned char *envelope_uc(const std::byte *p) noexcept { return reinterpret_cast<const unsigned char *>(p); }
unsigned char *envelope_uc(std::byte *p) noexcept { return reinterpret_cast<unsigned char *>(p); }

// Empty when `params` is within the limits of docs/encryption.md, else what is wrong.
std::string envelope_scrypt_problem(const ScryptParams &params) {
    if (params.log2_n < 1 || params.log2_n > 22) return fmt::format("scrypt log2(N) {} is outside 1..22", params.log2_n);
    if (params.r < 1 || params.r > 32) return fmt::format("scrypt r {} is outside 1..32", params.r);
    if (params.p < 1 || params.p > 16) return fmt::format("scrypt p {} is outside 1..16", params.p);
    const std::uint64_t n = std::uint64_t{1} << params.log2_n;
    if (params.r * n > (std::uint64_t{1} << 23))
        return fmt::format("scrypt r * N = {} * 2^{} needs more than 1 GiB of memory", params.r, params.log2_n);
    if (std::uint64_t{params.r} * params.p * n > (std::uint64_t{1} << 25))
        return fmt::format("scrypt r * p * N = {} * {} * 2^{} exceeds 2^25", params.r, params.p, params.log2_n);
    return {};
}

Result<EnvelopeCipherPtr> envelope_fetch_cipher() {
    EnvelopeCipherPtr cipher(EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr));
    if (!cipher) return fail(Errc::internal, "encryption: OpenSSL offers no AES-256-GCM");
    return cipher;
}

Result<void> envelope_scrypt(std::span<const unsigned char> passphrase, std::span<const unsigned char> salt,
                             const ScryptParams &params, EnvelopeSecret32 &out) {
    std::unique_ptr<EVP_KDF, EnvelopeKdfFree> kdf(EVP_KDF_fetch(nullptr, "SCRYPT", nullptr));
    if (!kdf) return fail(Errc::internal, "encryption: OpenSSL offers no scrypt");
    std::unique_ptr<EVP_KDF_CTX, EnvelopeKdfCtxFree> ctx(EVP_KDF_CTX_new(kdf.get()));
    if (!ctx) return fail(Errc::no_memory, "encryption: out of memory");
    std::uint64_t n = std::uint64_t{1} << params.log2_n;
    std::uint32_t r = params.r;
    std::uint32_t p = params.p;
    // OpenSSL refuses more than 32 MiB unless told: allow what these costs need (B and V) plus slack.
    std::uint64_t maxmem = 128 * std::uint64_t{r} * (n + 2) + 128 * std::uint64_t{r} * p + (std::uint64_t{1} << 20);
    const OSSL_PARAM params_list[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, const_cast<unsigned char *>(passphrase.data()),
                                          passphrase.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<unsigned char *>(salt.data()), salt.size()),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(ctx.get(), out.bytes.data(), out.bytes.size(), params_list) != 1)
        return fail(Errc::no_memory, fmt::format("encryption: scrypt key derivation failed (N = 2^{}, r = {}, p = {}; "
                                                 "out of memory?)",
                                                 params.log2_n, params.r, params.p));
    return success();
}

Result<void> envelope_hkdf(std::span<const unsigned char> ikm, std::span<const unsigned char> salt, EnvelopeSecret32 &out) {
    std::unique_ptr<EVP_KDF, EnvelopeKdfFree> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
    if (!kdf) return fail(Errc::internal, "encryption: OpenSSL offers no HKDF");
    std::unique_ptr<EVP_KDF_CTX, EnvelopeKdfCtxFree> ctx(EVP_KDF_CTX_new(kdf.get()));
    if (!ctx) return fail(Errc::no_memory, "encryption: out of memory");
    char digest[] = "SHA256";
    const OSSL_PARAM params_list[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char *>(ikm.data()), ikm.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<unsigned char *>(salt.data()), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char *>(envelope_hkdf_info.data()),
                                          envelope_hkdf_info.size()),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(ctx.get(), out.bytes.data(), out.bytes.size(), params_list) != 1)
        return fail(Errc::internal, "encryption: HKDF-SHA256 failed");
    return success();
}

// The file key: HKDF-SHA256(ikm = scrypt(passphrase) or the raw key, salt = header salt,
// info = "hypersdk-enc v1").
Result<void> envelope_derive_file_key(const EncryptionKey &key, const EnvelopeHeaderInfo &info,
                                      std::span<const unsigned char> salt, EnvelopeSecret32 &out) {
    const auto secret = EnvelopeKeyAccess::secret(key);
    if (info.kdf == EnvelopeKdf::scrypt) {
        if (key.kind() != EncryptionKey::Kind::passphrase)
            return fail(Errc::auth_failed, "the file was encrypted with a passphrase, not a key file (give "
                                           "--passphrase-file or --passphrase-env)");
        EnvelopeSecret32 ikm;
        HSDK_TRYV(envelope_scrypt(secret, salt, info.scrypt, ikm));
        return envelope_hkdf(ikm.bytes, salt, out);
    }
    if (key.kind() != EncryptionKey::Kind::raw_key)
        return fail(Errc::auth_failed, "the file was encrypted with a key file, not a passphrase (give --key-file)");
    return envelope_hkdf(secret, salt, out);
}

void envelope_nonce(std::span<const unsigned char> prefix, std::uint32_t counter, bool last,
                    std::array<unsigned char, envelope_nonce_size> &out) noexcept {
    std::memcpy(out.data(), prefix.data(), envelope_nonce_prefix_size);
    store_be<std::uint32_t>(out.data() + envelope_nonce_prefix_size, counter);
    out[envelope_nonce_size - 1] = last ? 1 : 0;
}

// Seals `plain` (at most one chunk) into `out` (plain.size() + 16 bytes): ciphertext, then tag.
Result<void> envelope_seal(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const EnvelopeSecret32 &file_key,
                           const EnvelopeHeaderBytes &header, std::uint32_t counter, bool last,
                           std::span<const std::byte> plain, std::span<std::byte> out) {
    std::array<unsigned char, envelope_nonce_size> nonce{};
    envelope_nonce(std::span(header).subspan(envelope_off_prefix, envelope_nonce_prefix_size), counter, last, nonce);
    int len = 0;
    int fin = 0;
    bool ok = EVP_EncryptInit_ex2(ctx, cipher, file_key.bytes.data(), nonce.data(), nullptr) == 1 &&
              EVP_EncryptUpdate(ctx, nullptr, &len, header.data(), static_cast<int>(header.size())) == 1;
    len = 0;
    if (ok && !plain.empty())
        ok = EVP_EncryptUpdate(ctx, envelope_uc(out.data()), &len, envelope_uc(plain.data()), static_cast<int>(plain.size())) == 1;
    if (ok) ok = EVP_EncryptFinal_ex(ctx, envelope_uc(out.data()) + len, &fin) == 1;
    if (ok) {
        OSSL_PARAM get[] = {
            OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out.data() + plain.size(), envelope_tag_size),
            OSSL_PARAM_construct_end(),
        };
        ok = EVP_CIPHER_CTX_get_params(ctx, get) == 1;
    }
    if (!ok || static_cast<std::size_t>(len + fin) != plain.size())
        return fail(Errc::internal, fmt::format("encryption: AES-256-GCM failed on chunk {}", counter));
    return success();
}

// Opens `sealed` (ciphertext || tag) into `out` (at least sealed.size() - 16 bytes). False when
// authentication fails; `out` then holds garbage the caller must wipe and never release.
bool envelope_open(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const EnvelopeSecret32 &file_key,
                   const EnvelopeHeaderBytes &header, std::uint32_t counter, bool last, std::span<const std::byte> sealed,
                   std::span<std::byte> out) {
    const std::size_t plain_len = sealed.size() - envelope_tag_size;
    std::array<unsigned char, envelope_nonce_size> nonce{};
    envelope_nonce(std::span(header).subspan(envelope_off_prefix, envelope_nonce_prefix_size), counter, last, nonce);
    int len = 0;
    int fin = 0;
    std::array<unsigned char, envelope_tag_size> tag{};
    std::memcpy(tag.data(), sealed.data() + plain_len, envelope_tag_size);
    bool ok = EVP_DecryptInit_ex2(ctx, cipher, file_key.bytes.data(), nonce.data(), nullptr) == 1 &&
              EVP_DecryptUpdate(ctx, nullptr, &len, header.data(), static_cast<int>(header.size())) == 1;
    len = 0;
    if (ok && plain_len > 0)
        ok = EVP_DecryptUpdate(ctx, envelope_uc(out.data()), &len, envelope_uc(sealed.data()), static_cast<int>(plain_len)) == 1;
    if (ok) {
        OSSL_PARAM set[] = {
            OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag.data(), tag.size()),
            OSSL_PARAM_construct_end(),
        };
        ok = EVP_CIPHER_CTX_set_params(ctx, set) == 1;
    }
    if (ok) ok = EVP_DecryptFinal_ex(ctx, envelope_uc(out.data()) + len, &fin) == 1;
    return ok && static_cast<std::size_t>(len + fin) == plain_len;
}

Result<void> envelope_random(std::span<unsigned char> out) {
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1)
        return fail(Errc::internal, "encryption: the random number generator failed");
    return success();
}

Error envelope_errno(int err, std::string_view what, std::string_view path) {
    Errc code = Errc::io_error;
    if (err == ENOSPC || err == EDQUOT || err == EFBIG) code = Errc::no_space;
    else if (err == EACCES || err == EPERM || err == EROFS) code = Errc::permission_denied;
    else if (err == ENOENT) code = Errc::not_found;
    return Error{code, fmt::format("{} '{}': {}", what, path, std::strerror(err))};
}

// Reads the whole (small) file at `path`, refusing more than `limit` bytes.
Result<std::vector<unsigned char>> envelope_read_small_file(const std::string &path, std::size_t limit, std::string_view what,
                                                            struct stat &st_out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(envelope_errno(errno, fmt::format("cannot open {}", what), path));
    std::vector<unsigned char> data;
    Result<std::vector<unsigned char>> result = fail(Errc::internal, "unreachable");
    if (::fstat(fd, &st_out) != 0) {
        result = fail(envelope_errno(errno, fmt::format("cannot stat {}", what), path));
    } else {
        std::array<unsigned char, 4096> buf{};
        for (;;) {
            const ssize_t n = ::read(fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                result = fail(envelope_errno(errno, fmt::format("cannot read {}", what), path));
                break;
            }
            if (n == 0) {
                result = std::move(data);
                break;
            }
            if (data.size() + static_cast<std::size_t>(n) > limit) {
                result = fail(Errc::invalid_argument, fmt::format("{} '{}' is larger than {} bytes", what, path, limit));
                break;
            }
            data.insert(data.end(), buf.begin(), buf.begin() + n);
        }
        OPENSSL_cleanse(buf.data(), buf.size());
    }
    ::close(fd);
    if (!result) OPENSSL_cleanse(data.data(), data.size());
    return result;
}

// ---- plain-file helpers for encrypt_file / decrypt_file ----------------------------------------

std::string envelope_parent_folder(const std::string &path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string envelope_base_name(const std::string &path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<void> envelope_write_all(int fd, std::span<const std::byte> data, const std::string &display) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(envelope_errno(errno, "cannot write", display));
        data = data.subspan(static_cast<std::size_t>(n));
    }
    return success();
}

// A temporary output beside its destination, removed unless commit() renamed it.
class EnvelopeTempOutput {
public:
    EnvelopeTempOutput() = default;
    EnvelopeTempOutput(const EnvelopeTempOutput &) = delete;
    EnvelopeTempOutput &operator=(const EnvelopeTempOutput &) = delete;
    ~EnvelopeTempOutput() { abandon(); }

    Result<void> create(const std::string &final_path, unsigned mode, bool overwrite) {
        final_ = final_path;
        folder_ = envelope_parent_folder(final_path);
        const std::string name = envelope_base_name(final_path);
        if (name.empty() || name == "." || name == "..")
            return fail(Errc::invalid_argument, fmt::format("output '{}' names no file", final_path));
        struct stat st {};
        if (!overwrite && ::lstat(final_path.c_str(), &st) == 0)
            return fail(Errc::conflict, fmt::format("output '{}' already exists", final_path));
        std::random_device rd;
        for (int attempt = 0; attempt < 16; ++attempt) {
            temp_ = fmt::format("{}/.{}.hsdk-{}-{:08x}.part", folder_, name, ::getpid(), rd());
            fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
            if (fd_ >= 0) break;
            if (errno != EEXIST) {
                const int err = errno;
                temp_.clear();
                return fail(envelope_errno(err, "cannot create a temporary file for", final_path));
            }
        }
        if (fd_ < 0) {
            temp_.clear();
            return fail(Errc::io_error, fmt::format("cannot create a temporary file for '{}'", final_path));
        }
        (void)::flock(fd_, LOCK_EX | LOCK_NB);  // marks it as in use for stale-temporary cleanup
        return success();
    }

    [[nodiscard]] int fd() const noexcept { return fd_; }

    Result<void> commit() {
        if (::fsync(fd_) != 0) return fail(envelope_errno(errno, "cannot flush", final_));
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) return fail(envelope_errno(errno, "cannot close", final_));
        if (::rename(temp_.c_str(), final_.c_str()) != 0) return fail(envelope_errno(errno, "cannot rename onto", final_));
        temp_.clear();
        const int dir = ::open(folder_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) {
            (void)::fsync(dir);
            ::close(dir);
        }
        return success();
    }

    void abandon() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        if (!temp_.empty()) ::unlink(temp_.c_str());
        temp_.clear();
    }

private:
    std::string final_;
    std::string folder_;
    std::string temp_;
    int fd_ = -1;
};

class EnvelopeInputFile {
public:
    EnvelopeInputFile() = default;
    EnvelopeInputFile(const EnvelopeInputFile &) = delete;
    EnvelopeInputFile &operator=(const EnvelopeInputFile &) = delete;
    ~EnvelopeInputFile() {
        if (fd_ >= 0) ::close(fd_);
    }
    Result<void> open(const std::string &path, bool need_regular) {
        path_ = path;
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) return fail(envelope_errno(errno, "cannot open", path));
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return fail(envelope_errno(errno, "cannot stat", path));
        if (need_regular && !S_ISREG(st.st_mode))
            return fail(Errc::invalid_argument, fmt::format("'{}' is not a regular file", path));
        size_ = static_cast<std::uint64_t>(st.st_size);
        return success();
    }
    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
    [[nodiscard]] const std::string &path() const noexcept { return path_; }

private:
    std::string path_;
    int fd_ = -1;
    std::uint64_t size_ = 0;
};

}  // namespace

// ---- header ----------------------------------------------------------------------------------

bool looks_encrypted(std::span<const std::byte> first_bytes) noexcept {
    return first_bytes.size() >= envelope_magic_size &&
           std::memcmp(first_bytes.data(), envelope_magic.data(), envelope_magic_size) == 0;
}

Result<void> check_scrypt_params(const ScryptParams &params) {
    if (auto problem = envelope_scrypt_problem(params); !problem.empty()) return fail(Errc::invalid_argument, problem);
    return success();
}

Result<EnvelopeHeaderInfo> parse_envelope_header(std::span<const std::byte> header) {
    if (!looks_encrypted(header)) return fail(Errc::invalid_argument, "not a hypersdk encrypted file");
    if (header.size() < envelope_header_size) return fail_corrupt("encrypted file is truncated (its header is incomplete)");
    const auto *h = envelope_uc(header.data());
    EnvelopeHeaderInfo info;
    info.version = h[envelope_off_version];
    if (info.version != envelope_version)
        return fail_unsupported(fmt::format("encrypted file version {} (this build reads version {})", info.version,
                                            envelope_version));
    const std::uint8_t kdf = h[envelope_off_kdf];
    if (kdf > 1) return fail_unsupported(fmt::format("encrypted file key derivation {} (known: 0 key file, 1 scrypt)", kdf));
    info.kdf = static_cast<EnvelopeKdf>(kdf);
    info.scrypt.log2_n = h[envelope_off_log2n];
    info.scrypt.r = load_be<std::uint32_t>(h + envelope_off_r);
    info.scrypt.p = load_be<std::uint32_t>(h + envelope_off_p);
    info.chunk_size = load_be<std::uint32_t>(h + envelope_off_chunk_size);
    if (h[envelope_off_reserved1] != 0 || h[envelope_off_reserved2] != 0)
        return fail_corrupt("encrypted file header: reserved bytes are not zero");
    if (info.chunk_size != envelope_chunk_size)
        return fail_unsupported(fmt::format("encrypted file chunk size {} (this build reads {})", info.chunk_size,
                                            envelope_chunk_size));
    if (info.kdf == EnvelopeKdf::raw_key) {
        if (info.scrypt.log2_n != 0 || info.scrypt.r != 0 || info.scrypt.p != 0)
            return fail_corrupt("encrypted file header: scrypt costs are set for a key-file envelope");
    } else {
        if (info.scrypt.log2_n == 0 || info.scrypt.r == 0 || info.scrypt.p == 0)
            return fail_corrupt("encrypted file header: a scrypt cost is zero");
        if (auto problem = envelope_scrypt_problem(info.scrypt); !problem.empty())
            return fail_unsupported("encrypted file header: " + problem);
    }
    return info;
}

std::uint64_t envelope_encrypted_size(std::uint64_t plaintext_size) noexcept {
    const std::uint64_t chunks = plaintext_size == 0 ? 1 : (plaintext_size + envelope_chunk_size - 1) / envelope_chunk_size;
    return envelope_header_size + plaintext_size + chunks * envelope_tag_size;
}

// ---- keys ------------------------------------------------------------------------------------

Result<EncryptionKey> EncryptionKey::from_passphrase(std::string_view passphrase) {
    if (passphrase.empty()) return fail(Errc::invalid_argument, "the passphrase is empty");
    return EncryptionKey(Kind::passphrase, std::vector<unsigned char>(passphrase.begin(), passphrase.end()));
}

Result<EncryptionKey> EncryptionKey::from_raw_key(std::span<const std::byte> key) {
    if (key.size() != envelope_key_size)
        return fail(Errc::invalid_argument, fmt::format("an encryption key must be exactly {} bytes (got {})", envelope_key_size,
                                                        key.size()));
    std::vector<unsigned char> bytes(envelope_key_size);
    std::memcpy(bytes.data(), key.data(), envelope_key_size);
    return EncryptionKey(Kind::raw_key, std::move(bytes));
}

EncryptionKey &EncryptionKey::operator=(const EncryptionKey &other) {
    if (this != &other) {
        wipe();
        kind_ = other.kind_;
        secret_ = other.secret_;
    }
    return *this;
}

EncryptionKey &EncryptionKey::operator=(EncryptionKey &&other) noexcept {
    if (this != &other) {
        wipe();
        kind_ = other.kind_;
        secret_ = std::move(other.secret_);
        other.secret_.clear();
    }
    return *this;
}

EncryptionKey::~EncryptionKey() { wipe(); }

void EncryptionKey::wipe() noexcept {
    if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
}

std::string_view EncryptionKey::describe() const noexcept { return kind_ == Kind::passphrase ? "passphrase" : "key file"; }

Result<EncryptionKey> key_from_passphrase_file(const std::string &path) {
    struct stat st {};
    HSDK_TRY(auto data, envelope_read_small_file(path, envelope_max_passphrase_file, "passphrase file", st));
    std::size_t len = data.size();
    if (len > 0 && data[len - 1] == '\n') {
        --len;
        if (len > 0 && data[len - 1] == '\r') --len;
    }
    if (len == 0) return fail(Errc::invalid_argument, fmt::format("passphrase file '{}' is empty", path));
    auto key = EncryptionKey::from_passphrase(std::string_view(reinterpret_cast<const char *>(data.data()), len));
    OPENSSL_cleanse(data.data(), data.size());
    return key;
}

Result<EncryptionKey> key_from_passphrase_env(const std::string &variable) {
    if (variable.empty()) return fail(Errc::invalid_argument, "no environment variable named for the passphrase");
    const char *value = std::getenv(variable.c_str());
    if (value == nullptr)
        return fail(Errc::not_found, fmt::format("environment variable {} (the passphrase) is not set", variable));
    if (*value == '\0')
        return fail(Errc::invalid_argument, fmt::format("environment variable {} (the passphrase) is empty", variable));
    return EncryptionKey::from_passphrase(value);
}

Result<EncryptionKey> key_from_key_file(const std::string &path) {
    struct stat st {};
    HSDK_TRY(auto data, envelope_read_small_file(path, 4096, "key file", st));
    if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
        OPENSSL_cleanse(data.data(), data.size());
        return fail(Errc::permission_denied,
                    fmt::format("key file '{}' may be read by its group or others (mode {:04o}): run chmod 600 '{}'", path,
                                st.st_mode & 07777, path));
    }
    if (data.size() != envelope_key_size) {
        const auto n = data.size();
        OPENSSL_cleanse(data.data(), data.size());
        return fail(Errc::invalid_argument,
                    fmt::format("key file '{}' must hold exactly {} bytes (it holds {})", path, envelope_key_size, n));
    }
    auto key = EncryptionKey::from_raw_key(std::as_bytes(std::span(data)));
    OPENSSL_cleanse(data.data(), data.size());
    return key;
}

// ---- writer ----------------------------------------------------------------------------------

struct EnvelopeWriter::State {
    EnvelopeSink sink;
    EnvelopeCipherPtr cipher;
    EnvelopeCipherCtxPtr ctx;
    EnvelopeSecret32 file_key;
    EnvelopeHeaderBytes header{};
    std::vector<std::byte> pending;  // plaintext not sealed yet (at most one chunk)
    std::vector<std::byte> sealed;   // one sealed chunk
    std::uint64_t counter = 0;       // index of the next chunk
    std::uint64_t plaintext = 0;
    std::uint64_t emitted = 0;
    bool finished = false;
    bool failed = false;

    ~State() {
        if (!pending.empty()) OPENSSL_cleanse(pending.data(), pending.size());
    }

    Result<void> emit(std::span<const std::byte> bytes) {
        if (auto r = sink(bytes); !r) {
            failed = true;
            return r;
        }
        emitted += bytes.size();
        return success();
    }

    Result<void> seal_chunk(std::span<const std::byte> plain, bool last) {
        // The last chunk may take counter 2^32 - 1; a non-last one must leave a counter for it.
        if (counter >= envelope_max_chunks - (last ? 0 : 1)) {
            failed = true;
            return fail(Errc::invalid_argument, "encryption: the data is larger than one envelope holds (256 TiB)");
        }
        const auto out = std::span(sealed).first(plain.size() + envelope_tag_size);
        if (auto r = envelope_seal(ctx.get(), cipher.get(), file_key, header, static_cast<std::uint32_t>(counter), last, plain, out);
            !r) {
            failed = true;
            return r;
        }
        ++counter;
        return emit(out);
    }

    Result<void> usable() const {
        if (failed) return fail(Errc::invalid_argument, "encryption: the envelope writer failed earlier");
        if (finished) return fail(Errc::invalid_argument, "encryption: the envelope is already finished");
        return success();
    }
};

EnvelopeWriter::EnvelopeWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
EnvelopeWriter::EnvelopeWriter(EnvelopeWriter &&) noexcept = default;
EnvelopeWriter &EnvelopeWriter::operator=(EnvelopeWriter &&) noexcept = default;
EnvelopeWriter::~EnvelopeWriter() = default;

Result<EnvelopeWriter> EnvelopeWriter::create(const EncryptionKey &key, EnvelopeSink sink, const ScryptParams &scrypt) {
    std::array<std::byte, envelope_salt_size> salt{};
    std::array<std::byte, envelope_nonce_prefix_size> prefix{};
    HSDK_TRYV(envelope_random(std::span(envelope_uc(salt.data()), salt.size())));
    HSDK_TRYV(envelope_random(std::span(envelope_uc(prefix.data()), prefix.size())));
    return create_deterministic_for_tests(key, std::move(sink), scrypt, salt, prefix);
}

// (create() is this with a random salt and prefix.)
Result<EnvelopeWriter> EnvelopeWriter::create_deterministic_for_tests(const EncryptionKey &key, EnvelopeSink sink,
                                                                       const ScryptParams &scrypt,
                                                                       std::span<const std::byte, envelope_salt_size> salt,
                                                                       std::span<const std::byte, envelope_nonce_prefix_size> nonce_prefix) {
    if (!sink) return fail(Errc::invalid_argument, "encryption: no sink for the envelope");
    EnvelopeHeaderInfo info;
    if (key.kind() == EncryptionKey::Kind::passphrase) {
        HSDK_TRYV(check_scrypt_params(scrypt));
        info.kdf = EnvelopeKdf::scrypt;
        info.scrypt = scrypt;
    } else {
        info.kdf = EnvelopeKdf::raw_key;
        info.scrypt = ScryptParams{0, 0, 0};
    }
    auto state = std::make_unique<State>();
    auto &h = state->header;
    std::memcpy(h.data(), envelope_magic.data(), envelope_magic_size);
    h[envelope_off_version] = envelope_version;
    h[envelope_off_kdf] = static_cast<unsigned char>(info.kdf);
    h[envelope_off_log2n] = info.scrypt.log2_n;
    h[envelope_off_reserved1] = 0;
    store_be<std::uint32_t>(h.data() + envelope_off_r, info.scrypt.r);
    store_be<std::uint32_t>(h.data() + envelope_off_p, info.scrypt.p);
    store_be<std::uint32_t>(h.data() + envelope_off_chunk_size, static_cast<std::uint32_t>(envelope_chunk_size));
    std::memcpy(h.data() + envelope_off_salt, salt.data(), envelope_salt_size);
    std::memcpy(h.data() + envelope_off_prefix, nonce_prefix.data(), envelope_nonce_prefix_size);
    h[envelope_off_reserved2] = 0;

    HSDK_TRY(state->cipher, envelope_fetch_cipher());
    state->ctx.reset(EVP_CIPHER_CTX_new());
    if (!state->ctx) return fail(Errc::no_memory, "encryption: out of memory");
    HSDK_TRYV(envelope_derive_file_key(key, info, std::span(h).subspan(envelope_off_salt, envelope_salt_size), state->file_key));
    state->sink = std::move(sink);
    state->pending.reserve(envelope_chunk_size);
    state->sealed.resize(envelope_sealed_chunk_size);
    HSDK_TRYV(state->emit(std::as_bytes(std::span(state->header))));
    return EnvelopeWriter(std::move(state));
}

Result<void> EnvelopeWriter::write(std::span<const std::byte> data) {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope writer was moved from");
    auto &s = *state_;
    HSDK_TRYV(s.usable());
    while (!data.empty()) {
        // A full chunk is sealed only once more data follows it: the last chunk is never empty
        // unless the whole plaintext is.
        if (s.pending.size() == envelope_chunk_size) {
            HSDK_TRYV(s.seal_chunk(s.pending, false));
            OPENSSL_cleanse(s.pending.data(), s.pending.size());
            s.pending.clear();
        }
        if (s.pending.empty() && data.size() > envelope_chunk_size) {
            HSDK_TRYV(s.seal_chunk(data.first(envelope_chunk_size), false));  // straight from the caller's buffer
            s.plaintext += envelope_chunk_size;
            data = data.subspan(envelope_chunk_size);
            continue;
        }
        const std::size_t n = std::min(data.size(), envelope_chunk_size - s.pending.size());
        s.pending.insert(s.pending.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
        s.plaintext += n;
        data = data.subspan(n);
    }
    return success();
}

Result<void> EnvelopeWriter::finish() {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope writer was moved from");
    auto &s = *state_;
    HSDK_TRYV(s.usable());
    HSDK_TRYV(s.seal_chunk(s.pending, true));
    if (!s.pending.empty()) OPENSSL_cleanse(s.pending.data(), s.pending.size());
    s.pending.clear();
    s.finished = true;
    return success();
}

bool EnvelopeWriter::finished() const noexcept { return state_ && state_->finished; }
std::uint64_t EnvelopeWriter::plaintext_bytes() const noexcept { return state_ ? state_->plaintext : 0; }
std::uint64_t EnvelopeWriter::envelope_bytes() const noexcept { return state_ ? state_->emitted : 0; }

// ---- reader ----------------------------------------------------------------------------------

namespace envelope_detail {

struct EnvelopeCacheEntry {
    std::uint64_t index = std::numeric_limits<std::uint64_t>::max();
    std::size_t length = 0;
    std::uint64_t last_used = 0;
    std::vector<std::byte> data;
};
constexpr std::size_t envelope_cache_entries = 4;

}  // namespace envelope_detail

using envelope_detail::EnvelopeCacheEntry;
using envelope_detail::envelope_cache_entries;

struct EnvelopeReader::State {
    EnvelopeReadAt read_at;
    EnvelopeCipherPtr cipher;
    EnvelopeSecret32 file_key;
    EnvelopeHeaderBytes header{};
    EnvelopeHeaderInfo info;
    std::uint64_t encrypted_size = 0;
    std::uint64_t chunks = 0;
    std::size_t last_length = 0;  // plaintext bytes of the last chunk
    std::uint64_t plaintext = 0;

    mutable std::mutex cache_mutex;
    mutable std::array<EnvelopeCacheEntry, envelope_cache_entries> cache;
    mutable std::uint64_t cache_clock = 0;

    ~State() {
        for (auto &e : cache)
            if (!e.data.empty()) OPENSSL_cleanse(e.data.data(), e.data.size());
    }

    [[nodiscard]] std::size_t chunk_length(std::uint64_t index) const noexcept {
        return index + 1 == chunks ? last_length : envelope_chunk_size;
    }

    Result<void> read_exact(std::uint64_t offset, std::span<std::byte> out) const {
        while (!out.empty()) {
            HSDK_TRY(const std::size_t n, read_at(offset, out));
            if (n == 0)
                return fail_corrupt(fmt::format("encrypted file is truncated (it ends before byte {} that its size promised)",
                                                offset + out.size()));
            if (n > out.size()) return fail(Errc::internal, "encryption: the read callback returned more than asked");
            offset += n;
            out = out.subspan(n);
        }
        return success();
    }

    // Authenticates chunk `index` and decrypts it into `out` (>= its length). On failure `out` is
    // wiped and the error says what the failure most likely means.
    Result<std::size_t> decrypt(std::uint64_t index, std::span<std::byte> out) const {
        if (index >= chunks) return fail(Errc::invalid_argument, fmt::format("encryption: chunk {} is past the end", index));
        const std::size_t plain_len = chunk_length(index);
        if (out.size() < plain_len) return fail(Errc::invalid_argument, "encryption: chunk buffer too small");
        std::vector<std::byte> sealed(plain_len + envelope_tag_size);
        HSDK_TRYV(read_exact(envelope_header_size + index * envelope_sealed_chunk_size, sealed));
        EnvelopeCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
        if (!ctx) return fail(Errc::no_memory, "encryption: out of memory");
        const auto counter = static_cast<std::uint32_t>(index);
        const bool last = index + 1 == chunks;
        if (envelope_open(ctx.get(), cipher.get(), file_key, header, counter, last, sealed, out)) return plain_len;
        // Failed: find out whether it is a whole chunk in the wrong role (the file was cut at a
        // chunk boundary, or chunks were appended) before calling it damaged. Nothing is released.
        const bool other_role = envelope_open(ctx.get(), cipher.get(), file_key, header, counter, !last, sealed, out);
        OPENSSL_cleanse(out.data(), plain_len);
        if (other_role && last) return fail_corrupt("encrypted file is truncated (its last chunk is missing)");
        if (other_role) return fail_corrupt(fmt::format("encrypted file has data after its last chunk (chunk {})", index));
        if (index == 0) return fail(Errc::auth_failed, "wrong passphrase or key, or the header was changed");
        return fail(Errc::checksum_mismatch, fmt::format("encrypted file: chunk {} failed authentication (damaged or reordered)", index));
    }

    // Copies [from, from + out.size()) of chunk `index` from the cache; false on a miss.
    bool from_cache(std::uint64_t index, std::size_t from, std::span<std::byte> out) const {
        std::lock_guard lock(cache_mutex);
        for (auto &e : cache) {
            if (e.index != index) continue;
            std::memcpy(out.data(), e.data.data() + from, out.size());
            e.last_used = ++cache_clock;
            return true;
        }
        return false;
    }

    void to_cache(std::uint64_t index, std::span<const std::byte> plain) const {
        std::lock_guard lock(cache_mutex);
        EnvelopeCacheEntry *victim = &cache[0];
        for (auto &e : cache) {
            if (e.index == index) return;
            if (e.last_used < victim->last_used) victim = &e;
        }
        victim->data.resize(envelope_chunk_size);
        std::memcpy(victim->data.data(), plain.data(), plain.size());
        victim->index = index;
        victim->length = plain.size();
        victim->last_used = ++cache_clock;
    }
};

EnvelopeReader::EnvelopeReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
EnvelopeReader::EnvelopeReader(EnvelopeReader &&) noexcept = default;
EnvelopeReader &EnvelopeReader::operator=(EnvelopeReader &&) noexcept = default;
EnvelopeReader::~EnvelopeReader() = default;

Result<EnvelopeReader> EnvelopeReader::open(const EncryptionKey &key, EnvelopeReadAt read_at, std::uint64_t encrypted_size) {
    if (!read_at) return fail(Errc::invalid_argument, "encryption: no read callback for the envelope");
    auto state = std::make_unique<State>();
    state->read_at = std::move(read_at);
    state->encrypted_size = encrypted_size;

    // The header (or as much of it as the file holds: enough to tell another file from a cut one).
    const std::size_t head = static_cast<std::size_t>(std::min<std::uint64_t>(encrypted_size, envelope_header_size));
    HSDK_TRYV(state->read_exact(0, std::as_writable_bytes(std::span(state->header).first(head))));
    HSDK_TRY(state->info, parse_envelope_header(std::as_bytes(std::span(state->header).first(head))));

    // The chunk layout from the size: full sealed chunks, then a last one of 16..65552 bytes.
    const std::uint64_t body = encrypted_size - envelope_header_size;
    if (body < envelope_tag_size) return fail_corrupt("encrypted file is truncated (it has no chunk)");
    const std::uint64_t full = body / envelope_sealed_chunk_size;
    const std::uint64_t rest = body % envelope_sealed_chunk_size;
    if (rest == 0) {
        state->chunks = full;
        state->last_length = envelope_chunk_size;
    } else if (rest < envelope_tag_size) {
        return fail_corrupt(fmt::format("encrypted file is truncated or has bytes after its last chunk (its last {} bytes "
                                        "are shorter than a chunk tag)",
                                        rest));
    } else {
        state->chunks = full + 1;
        state->last_length = static_cast<std::size_t>(rest - envelope_tag_size);
    }
    if (state->chunks > envelope_max_chunks)
        return fail_corrupt(fmt::format("encrypted file has {} chunks (at most 2^32)", state->chunks));
    state->plaintext = (state->chunks - 1) * envelope_chunk_size + state->last_length;

    HSDK_TRY(state->cipher, envelope_fetch_cipher());
    HSDK_TRYV(envelope_derive_file_key(key, state->info,
                                       std::span(state->header).subspan(envelope_off_salt, envelope_salt_size), state->file_key));

    // Chunk 0 now: a wrong key fails at open, not at the first read.
    std::vector<std::byte> first(envelope_chunk_size);
    HSDK_TRY(const std::size_t first_len, state->decrypt(0, first));
    state->to_cache(0, std::span(first).first(first_len));
    OPENSSL_cleanse(first.data(), first.size());
    return EnvelopeReader(std::move(state));
}

std::uint64_t EnvelopeReader::plaintext_size() const noexcept { return state_ ? state_->plaintext : 0; }
std::uint64_t EnvelopeReader::chunk_count() const noexcept { return state_ ? state_->chunks : 0; }
const EnvelopeHeaderInfo &EnvelopeReader::header() const noexcept { return state_->info; }

Result<std::size_t> EnvelopeReader::read_at(std::uint64_t offset, std::span<std::byte> out) const {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope reader was moved from");
    const auto &s = *state_;
    if (offset >= s.plaintext || out.empty()) return std::size_t{0};
    const std::size_t total = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), s.plaintext - offset));
    std::vector<std::byte> scratch;
    std::size_t done = 0;
    while (done < total) {
        const std::uint64_t pos = offset + done;
        const std::uint64_t index = pos / envelope_chunk_size;
        const auto from = static_cast<std::size_t>(pos % envelope_chunk_size);
        const std::size_t length = s.chunk_length(index);
        const std::size_t piece = std::min(total - done, length - from);
        const auto dest = out.subspan(done, piece);
        if (!s.from_cache(index, from, dest)) {
            if (scratch.empty()) scratch.resize(envelope_chunk_size);
            HSDK_TRY(const std::size_t got, s.decrypt(index, scratch));
            std::memcpy(dest.data(), scratch.data() + from, piece);
            // Keep the chunk when this read stopped inside it: the next read likely continues there.
            if (from + piece < got) s.to_cache(index, std::span(scratch).first(got));
        }
        done += piece;
    }
    if (!scratch.empty()) OPENSSL_cleanse(scratch.data(), scratch.size());
    return total;
}

Result<std::size_t> EnvelopeReader::read_chunk(std::uint64_t index, std::span<std::byte> out) const {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope reader was moved from");
    if (index >= state_->chunks) return fail(Errc::invalid_argument, fmt::format("encryption: chunk {} is past the end", index));
    const std::size_t length = state_->chunk_length(index);
    if (out.size() < length) return fail(Errc::invalid_argument, "encryption: chunk buffer too small");
    if (state_->from_cache(index, 0, out.first(length))) return length;
    std::vector<std::byte> scratch(envelope_chunk_size);
    auto got = state_->decrypt(index, scratch);
    if (got) std::memcpy(out.data(), scratch.data(), got.value());
    OPENSSL_cleanse(scratch.data(), scratch.size());
    return got;
}

Result<void> EnvelopeReader::verify_all() const {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope reader was moved from");
    std::vector<std::byte> scratch(envelope_chunk_size);
    Result<void> result = success();
    for (std::uint64_t i = 0; i < state_->chunks && result; ++i)
        if (auto r = state_->decrypt(i, scratch); !r) result = fail(std::move(r).error());
    OPENSSL_cleanse(scratch.data(), scratch.size());
    return result;
}

// ---- whole files -----------------------------------------------------------------------------

Result<void> encrypt_file(const EncryptionKey &key, const std::string &in_path, const std::string &out_path,
                          const ScryptParams &scrypt, bool overwrite) {
    EnvelopeInputFile in;
    HSDK_TRYV(in.open(in_path, false));
    EnvelopeTempOutput out;
    HSDK_TRYV(out.create(out_path, 0644, overwrite));
    const int out_fd = out.fd();
    HSDK_TRY(auto writer, EnvelopeWriter::create(
                              key, [out_fd, &out_path](std::span<const std::byte> bytes) { return envelope_write_all(out_fd, bytes, out_path); },
                              scrypt));
    std::vector<std::byte> buf(16 * envelope_chunk_size);
    Result<void> result = success();
    for (;;) {
        const ssize_t n = ::read(in.fd(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            result = fail(envelope_errno(errno, "cannot read", in_path));
            break;
        }
        if (n == 0) break;
        if (result = writer.write(std::span(buf).first(static_cast<std::size_t>(n))); !result) break;
    }
    OPENSSL_cleanse(buf.data(), buf.size());
    HSDK_TRYV(result);
    HSDK_TRYV(writer.finish());
    return out.commit();
}

Result<void> decrypt_file(const EncryptionKey &key, const std::string &in_path, const std::string &out_path, bool overwrite) {
    EnvelopeInputFile in;
    HSDK_TRYV(in.open(in_path, true));
    const int in_fd = in.fd();
    auto reader = EnvelopeReader::open(
        key,
        [in_fd, &in_path](std::uint64_t offset, std::span<std::byte> buf) -> Result<std::size_t> {
            for (;;) {
                const ssize_t n = ::pread(in_fd, buf.data(), buf.size(), static_cast<off_t>(offset));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return fail(envelope_errno(errno, "cannot read", in_path));
                return static_cast<std::size_t>(n);
            }
        },
        in.size());
    if (!reader) return fail(reader.error().with_context(fmt::format("decrypting '{}'", in_path)));
    EnvelopeTempOutput out;
    HSDK_TRYV(out.create(out_path, 0600, overwrite));
    std::vector<std::byte> plain(envelope_chunk_size);
    Result<void> result = success();
    for (std::uint64_t i = 0; i < reader.value().chunk_count() && result; ++i) {
        auto got = reader.value().read_chunk(i, plain);  // authenticated before a byte of it is written
        if (!got) {
            result = fail(got.error().with_context(fmt::format("decrypting '{}'", in_path)));
            break;
        }
        result = envelope_write_all(out.fd(), std::span(plain).first(got.value()), out_path);
    }
    OPENSSL_cleanse(plain.data(), plain.size());
    HSDK_TRYV(result);  // `out` removes the temporary on the way out
    return out.commit();
}

}  // namespace hypersdk::io
