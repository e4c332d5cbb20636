#include "io/stream_aead.hpp"

#include "io/file.hpp"

#include <fmt/format.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace hypersdk::io {

namespace {

struct SaeadKdfFree {
    void operator()(EVP_KDF *k) const noexcept { EVP_KDF_free(k); }
};
struct SaeadKdfCtxFree {
    void operator()(EVP_KDF_CTX *k) const noexcept { EVP_KDF_CTX_free(k); }
};
using SaeadKdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, SaeadKdfCtxFree>;

Result<SaeadKdfCtxPtr> saead_kdf(std::string_view context, const char *name) {
    std::unique_ptr<EVP_KDF, SaeadKdfFree> kdf(EVP_KDF_fetch(nullptr, name, nullptr));
    if (!kdf) return fail(Errc::internal, fmt::format("{}: OpenSSL offers no {}", context, name));
    SaeadKdfCtxPtr ctx(EVP_KDF_CTX_new(kdf.get()));
    if (!ctx) return fail(Errc::no_memory, fmt::format("{}: out of memory", context));
    return ctx;
}

unsigned char *saead_uc(std::byte *p) noexcept { return reinterpret_cast<unsigned char *>(p); }
const unsigned char *saead_uc(const std::byte *p) noexcept { return reinterpret_cast<const unsigned char *>(p); }

}  // namespace

// ---- OpenSSL helpers ---------------------------------------------------------------------------

namespace stream_aead_detail {

Result<CipherPtr> fetch_cipher(std::string_view context, const char *name) {
    CipherPtr cipher(EVP_CIPHER_fetch(nullptr, name, nullptr));
    if (!cipher) return fail(Errc::internal, fmt::format("{}: OpenSSL offers no {}", context, name));
    return cipher;
}

Result<CipherCtxPtr> new_cipher_ctx(std::string_view context) {
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return fail(Errc::no_memory, fmt::format("{}: out of memory", context));
    return ctx;
}

Result<void> random_bytes(std::string_view context, std::span<unsigned char> out) {
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1)
        return fail(Errc::internal, fmt::format("{}: the random number generator failed", context));
    return success();
}

Result<void> hkdf_sha256(std::string_view context, std::span<const unsigned char> ikm, std::span<const unsigned char> salt,
                         std::string_view info, std::span<unsigned char> out) {
    HSDK_TRY(auto ctx, saead_kdf(context, "HKDF"));
    char digest[] = "SHA256";
    OSSL_PARAM params[5];
    std::size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char *>(ikm.data()), ikm.size());
    // An empty salt is HKDF's default (HashLen zero bytes): leave the parameter out.
    if (!salt.empty())
        params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<unsigned char *>(salt.data()),
                                                        salt.size());
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char *>(info.data()), info.size());
    params[n] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1)
        return fail(Errc::internal, fmt::format("{}: HKDF-SHA256 failed", context));
    return success();
}

Result<void> scrypt(std::string_view context, std::span<const unsigned char> passphrase, std::span<const unsigned char> salt,
                    unsigned log2_n, std::uint32_t r, std::uint32_t p, std::span<unsigned char> out) {
    HSDK_TRY(auto ctx, saead_kdf(context, "scrypt"));  // (OpenSSL's names ignore case)
    std::uint64_t n = std::uint64_t{1} << log2_n;
    // OpenSSL refuses more than 32 MiB unless told: allow what these costs need (B and V) plus slack.
    std::uint64_t maxmem = 128 * std::uint64_t{r} * (n + 2) + 128 * std::uint64_t{r} * p + (std::uint64_t{1} << 20);
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, const_cast<unsigned char *>(passphrase.data()),
                                          passphrase.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<unsigned char *>(salt.data()), salt.size()),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1)
        return fail(Errc::no_memory, fmt::format("{}: scrypt key derivation failed (N = 2^{}, r = {}, p = {}: {} MiB; out of "
                                                 "memory?)",
                                                 context, log2_n, r, p, (128 * std::uint64_t{r} * n) >> 20));
    return success();
}

bool aead_seal(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, std::span<const unsigned char, stream_aead_key_size> key,
               std::span<const unsigned char, stream_aead_nonce_size> nonce, std::span<const unsigned char> aad,
               std::span<const std::byte> plain, std::span<std::byte> out) {
    int len = 0;
    int fin = 0;
    bool ok = EVP_EncryptInit_ex2(ctx, cipher, key.data(), nonce.data(), nullptr) == 1;
    if (ok && !aad.empty()) ok = EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1;
    len = 0;
    if (ok && !plain.empty())
        ok = EVP_EncryptUpdate(ctx, saead_uc(out.data()), &len, saead_uc(plain.data()), static_cast<int>(plain.size())) == 1;
    if (ok) ok = EVP_EncryptFinal_ex(ctx, saead_uc(out.data()) + len, &fin) == 1;
    if (ok) {
        OSSL_PARAM get[] = {
            OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out.data() + plain.size(), stream_aead_tag_size),
            OSSL_PARAM_construct_end(),
        };
        ok = EVP_CIPHER_CTX_get_params(ctx, get) == 1;
    }
    return ok && static_cast<std::size_t>(len + fin) == plain.size();
}

bool aead_open(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, std::span<const unsigned char, stream_aead_key_size> key,
               std::span<const unsigned char, stream_aead_nonce_size> nonce, std::span<const unsigned char> aad,
               std::span<const std::byte> sealed, std::span<std::byte> out) {
    const std::size_t plain_len = sealed.size() - stream_aead_tag_size;
    std::array<unsigned char, stream_aead_tag_size> tag{};
    std::memcpy(tag.data(), sealed.data() + plain_len, stream_aead_tag_size);
    int len = 0;
    int fin = 0;
    bool ok = EVP_DecryptInit_ex2(ctx, cipher, key.data(), nonce.data(), nullptr) == 1;
    if (ok && !aad.empty()) ok = EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1;
    len = 0;
    if (ok && plain_len > 0)
        ok = EVP_DecryptUpdate(ctx, saead_uc(out.data()), &len, saead_uc(sealed.data()), static_cast<int>(plain_len)) == 1;
    if (ok) {
        OSSL_PARAM set[] = {
            OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag.data(), tag.size()),
            OSSL_PARAM_construct_end(),
        };
        ok = EVP_CIPHER_CTX_set_params(ctx, set) == 1;
    }
    if (ok) ok = EVP_DecryptFinal_ex(ctx, saead_uc(out.data()) + len, &fin) == 1;
    return ok && static_cast<std::size_t>(len + fin) == plain_len;
}

Result<std::vector<unsigned char>> read_small_file(const std::string &path, std::size_t limit, std::string_view what,
                                                   struct stat *st) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno_error(errno, fmt::format("cannot open {}", what), path));
    std::vector<unsigned char> data;
    Result<std::vector<unsigned char>> result = fail(Errc::internal, "unreachable");
    std::array<unsigned char, 4096> buf{};
    if (st != nullptr && ::fstat(fd, st) != 0) {
        result = fail(errno_error(errno, fmt::format("cannot stat {}", what), path));
    } else {
        for (;;) {
            const ssize_t n = ::read(fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                result = fail(errno_error(errno, fmt::format("cannot read {}", what), path));
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
            if (data.capacity() < data.size() + static_cast<std::size_t>(n)) {
                // Grow by hand so that no copy of secret bytes is left behind unwiped.
                std::vector<unsigned char> bigger;
                bigger.reserve(std::max<std::size_t>(2 * data.capacity(), data.size() + static_cast<std::size_t>(n) + 4096));
                bigger.assign(data.begin(), data.end());
                OPENSSL_cleanse(data.data(), data.size());
                data.swap(bigger);
            }
            data.insert(data.end(), buf.begin(), buf.begin() + n);
        }
    }
    OPENSSL_cleanse(buf.data(), buf.size());
    ::close(fd);
    if (!result) OPENSSL_cleanse(data.data(), data.size());
    return result;
}

// ---- chunk AEAD ------------------------------------------------------------------------------

Result<void> ChunkAead::init(const StreamAeadFormat &format, const StreamAeadKey &key) {
    if (key.nonce_prefix.size() != format.nonce_prefix_size)
        return fail(Errc::internal, fmt::format("{}: a nonce prefix of {} bytes, not {}", format.context, key.nonce_prefix.size(),
                                                format.nonce_prefix_size));
    HSDK_TRY(cipher_, fetch_cipher(format.context, format.cipher));
    std::copy(key.key.begin(), key.key.end(), key_.bytes.begin());
    // std::copy, not memcpy: an empty prefix (age) may have no pointer at all.
    std::copy(key.nonce_prefix.begin(), key.nonce_prefix.end(), prefix_.begin());
    prefix_size_ = key.nonce_prefix.size();
    aad_.assign(key.aad.begin(), key.aad.end());
    return success();
}

std::array<unsigned char, stream_aead_nonce_size> ChunkAead::nonce(std::uint64_t index, bool last) const noexcept {
    auto nonce = prefix_;
    // The counter, big-endian, fills the bytes between the prefix and the flag.
    for (std::size_t at = stream_aead_nonce_size - 1; at > prefix_size_; index >>= 8)
        nonce[--at] = static_cast<unsigned char>(index);
    nonce[stream_aead_nonce_size - 1] = last ? 1 : 0;
    return nonce;
}

bool ChunkAead::seal(EVP_CIPHER_CTX *ctx, std::uint64_t index, bool last, std::span<const std::byte> plain,
                     std::span<std::byte> out) const {
    return aead_seal(ctx, cipher_.get(), key_.bytes, nonce(index, last), aad_, plain, out);
}

bool ChunkAead::open(EVP_CIPHER_CTX *ctx, std::uint64_t index, bool last, std::span<const std::byte> sealed,
                     std::span<std::byte> out) const {
    return aead_open(ctx, cipher_.get(), key_.bytes, nonce(index, last), aad_, sealed, out);
}

}  // namespace stream_aead_detail

// ---- writer ----------------------------------------------------------------------------------

StreamAeadWriter::~StreamAeadWriter() {
    if (!pending_.empty()) OPENSSL_cleanse(pending_.data(), pending_.size());
}

Result<void> StreamAeadWriter::start(const StreamAeadFormat &format, const StreamAeadKey &key, StreamAeadSink sink) {
    format_ = &format;
    HSDK_TRYV(aead_.init(format, key));
    HSDK_TRY(ctx_, stream_aead_detail::new_cipher_ctx(format.context));
    sink_ = std::move(sink);
    pending_.reserve(stream_aead_chunk_size);
    sealed_.resize(stream_aead_sealed_chunk_size);
    return success();
}

Result<void> StreamAeadWriter::emit(std::span<const std::byte> bytes) {
    if (auto r = sink_(bytes); !r) {
        failed_ = true;
        return r;
    }
    emitted_ += bytes.size();
    return success();
}

Result<void> StreamAeadWriter::seal_chunk(std::span<const std::byte> plain, bool last) {
    // The last chunk may take the counter's highest value; a chunk before it must leave that free.
    if (counter_ >= format_->max_chunks() - (last ? 0 : 1)) {
        failed_ = true;
        return fail(format_->error(StreamAeadFault::too_large, counter_));
    }
    const auto out = std::span(sealed_).first(plain.size() + stream_aead_tag_size);
    if (!aead_.seal(ctx_.get(), counter_, last, plain, out)) {
        failed_ = true;
        return fail(Errc::internal, fmt::format("{}: {} failed on chunk {}", format_->context, format_->cipher, counter_));
    }
    ++counter_;
    return emit(out);
}

Result<void> StreamAeadWriter::usable() const {
    if (failed_) return fail(format_->error(StreamAeadFault::writer_failed, 0));
    if (finished_) return fail(format_->error(StreamAeadFault::writer_finished, 0));
    return success();
}

Result<void> StreamAeadWriter::write(std::span<const std::byte> data) {
    HSDK_TRYV(usable());
    while (!data.empty()) {
        // A full chunk is sealed only once more data follows it: the last chunk is never empty
        // unless the whole plaintext is (age's spec requires it; the envelope's writers keep it).
        if (pending_.size() == stream_aead_chunk_size) {
            HSDK_TRYV(seal_chunk(pending_, false));
            OPENSSL_cleanse(pending_.data(), pending_.size());
            pending_.clear();
        }
        if (pending_.empty() && data.size() > stream_aead_chunk_size) {
            HSDK_TRYV(seal_chunk(data.first(stream_aead_chunk_size), false));  // straight from the caller's buffer
            plaintext_ += stream_aead_chunk_size;
            data = data.subspan(stream_aead_chunk_size);
            continue;
        }
        const std::size_t n = std::min(data.size(), stream_aead_chunk_size - pending_.size());
        pending_.insert(pending_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
        plaintext_ += n;
        data = data.subspan(n);
    }
    return success();
}

Result<void> StreamAeadWriter::finish() {
    HSDK_TRYV(usable());
    HSDK_TRYV(seal_chunk(pending_, true));
    if (!pending_.empty()) OPENSSL_cleanse(pending_.data(), pending_.size());
    pending_.clear();
    finished_ = true;
    return success();
}

// ---- reader ----------------------------------------------------------------------------------

Result<void> stream_aead_read_exact(const StreamAeadFormat &format, const StreamAeadReadAt &read_at, std::uint64_t offset,
                                    std::span<std::byte> out) {
    while (!out.empty()) {
        HSDK_TRY(const std::size_t n, read_at(offset, out));
        if (n == 0) return fail(format.error(StreamAeadFault::ends_early, offset + out.size()));
        if (n > out.size())
            return fail(Errc::internal, fmt::format("{}: the read callback returned more than asked", format.context));
        offset += n;
        out = out.subspan(n);
    }
    return success();
}

StreamAeadReader::~StreamAeadReader() {
    for (auto &e : cache_)
        if (!e.data.empty()) OPENSSL_cleanse(e.data.data(), e.data.size());
}

Result<void> StreamAeadReader::open(const StreamAeadFormat &format, StreamAeadReadAt read_at, std::uint64_t payload_offset,
                                    std::uint64_t size) {
    format_ = &format;
    read_at_ = std::move(read_at);
    payload_offset_ = payload_offset;
    // Full sealed chunks, then a last one of 16..65552 bytes (only 16, empty, when the format
    // allows an empty last chunk after full ones, or when there are none).
    const std::uint64_t body = size > payload_offset ? size - payload_offset : 0;
    if (body < stream_aead_tag_size) return fail(format.error(StreamAeadFault::no_chunk, body));
    const std::uint64_t full = body / stream_aead_sealed_chunk_size;
    const std::uint64_t rest = body % stream_aead_sealed_chunk_size;
    if (rest == 0) {
        chunks_ = full;
        last_length_ = stream_aead_chunk_size;
    } else if (rest < stream_aead_tag_size) {
        return fail(format.error(StreamAeadFault::partial_tag, rest));
    } else if (rest == stream_aead_tag_size && full > 0 && !format.empty_last_chunk_after_full) {
        return fail(format.error(StreamAeadFault::empty_last_chunk, 0));
    } else {
        chunks_ = full + 1;
        last_length_ = static_cast<std::size_t>(rest - stream_aead_tag_size);
    }
    if (chunks_ > format.max_chunks()) return fail(format.error(StreamAeadFault::too_many_chunks, chunks_));
    plaintext_ = (chunks_ - 1) * stream_aead_chunk_size + last_length_;
    return success();
}

Result<void> StreamAeadReader::unlock(const StreamAeadKey &key, std::uint64_t check) {
    HSDK_TRYV(aead_.init(*format_, key));
    std::vector<std::byte> plain(stream_aead_chunk_size);
    auto got = decrypt(check, plain);
    if (got) to_cache(check, std::span(plain).first(got.value()));
    OPENSSL_cleanse(plain.data(), plain.size());
    if (!got) return fail(std::move(got).error());
    return success();
}

Result<std::size_t> StreamAeadReader::fitting_length(std::uint64_t index, std::size_t out_size) const {
    if (index >= chunks_)
        return fail(Errc::invalid_argument, fmt::format("{}: chunk {} is past the end", format_->context, index));
    const std::size_t length = chunk_length(index);
    if (out_size < length) return fail(Errc::invalid_argument, fmt::format("{}: chunk buffer too small", format_->context));
    return length;
}

// Authenticates chunk `index` and decrypts it into `out` (>= its length). On failure `out` is
// wiped and the error says what the failure most likely means.
Result<std::size_t> StreamAeadReader::decrypt(std::uint64_t index, std::span<std::byte> out) const {
    HSDK_TRY(const std::size_t plain_len, fitting_length(index, out.size()));
    std::vector<std::byte> sealed(plain_len + stream_aead_tag_size);
    HSDK_TRYV(stream_aead_read_exact(*format_, read_at_, payload_offset_ + index * stream_aead_sealed_chunk_size, sealed));
    HSDK_TRY(const auto ctx, stream_aead_detail::new_cipher_ctx(format_->context));
    const bool last = index + 1 == chunks_;
    if (aead_.open(ctx.get(), index, last, sealed, out)) return plain_len;
    // Failed: find out whether it is a whole chunk in the wrong role (the file was cut at a chunk
    // boundary, or chunks were appended) before calling it damaged. Nothing is released.
    const bool other_role = aead_.open(ctx.get(), index, !last, sealed, out);
    OPENSSL_cleanse(out.data(), plain_len);
    if (other_role && last) return fail(format_->error(StreamAeadFault::last_missing, index));
    if (other_role) return fail(format_->error(StreamAeadFault::data_after_last, index));
    return fail(format_->error(StreamAeadFault::bad_chunk, index));
}

// Copies [from, from + out.size()) of chunk `index` from the cache; false on a miss.
bool StreamAeadReader::from_cache(std::uint64_t index, std::size_t from, std::span<std::byte> out) const {
    std::lock_guard lock(cache_mutex_);
    for (auto &e : cache_) {
        if (e.index != index) continue;
        std::memcpy(out.data(), e.data.data() + from, out.size());
        e.last_used = ++cache_clock_;
        return true;
    }
    return false;
}

void StreamAeadReader::to_cache(std::uint64_t index, std::span<const std::byte> plain) const {
    std::lock_guard lock(cache_mutex_);
    auto *victim = &cache_[0];
    for (auto &e : cache_) {
        if (e.index == index) return;
        if (e.last_used < victim->last_used) victim = &e;
    }
    victim->data.resize(stream_aead_chunk_size);
    std::memcpy(victim->data.data(), plain.data(), plain.size());
    victim->index = index;
    victim->last_used = ++cache_clock_;
}

Result<std::size_t> StreamAeadReader::read_at(std::uint64_t offset, std::span<std::byte> out) const {
    if (offset >= plaintext_ || out.empty()) return std::size_t{0};
    const auto total = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), plaintext_ - offset));
    std::vector<std::byte> scratch;
    std::size_t done = 0;
    Result<std::size_t> result = total;
    while (done < total) {
        const std::uint64_t pos = offset + done;
        const std::uint64_t index = pos / stream_aead_chunk_size;
        const auto from = static_cast<std::size_t>(pos % stream_aead_chunk_size);
        const std::size_t piece = std::min(total - done, chunk_length(index) - from);
        const auto dest = out.subspan(done, piece);
        if (!from_cache(index, from, dest)) {
            if (scratch.empty()) scratch.resize(stream_aead_chunk_size);
            auto got = decrypt(index, scratch);
            if (!got) {
                result = fail(std::move(got).error());
                break;  // to wipe `scratch`, which may hold an earlier chunk
            }
            std::memcpy(dest.data(), scratch.data() + from, piece);
            // Keep the chunk when this read stopped inside it: the next read likely continues there.
            if (from + piece < got.value()) to_cache(index, std::span(scratch).first(got.value()));
        }
        done += piece;
    }
    if (!scratch.empty()) OPENSSL_cleanse(scratch.data(), scratch.size());
    return result;
}

Result<std::size_t> StreamAeadReader::read_chunk(std::uint64_t index, std::span<std::byte> out) const {
    HSDK_TRY(const std::size_t length, fitting_length(index, out.size()));
    if (from_cache(index, 0, out.first(length))) return length;
    // Through a scratch buffer: `out` stays untouched when the chunk fails.
    std::vector<std::byte> scratch(stream_aead_chunk_size);
    auto got = decrypt(index, scratch);
    if (got) std::memcpy(out.data(), scratch.data(), got.value());
    OPENSSL_cleanse(scratch.data(), scratch.size());
    return got;
}

Result<void> StreamAeadReader::verify_all() const {
    std::vector<std::byte> scratch(stream_aead_chunk_size);
    Result<void> result = success();
    for (std::uint64_t i = 0; i < chunks_ && result; ++i)
        if (auto r = decrypt(i, scratch); !r) result = fail(std::move(r).error());
    OPENSSL_cleanse(scratch.data(), scratch.size());
    return result;
}

// ---- whole files -----------------------------------------------------------------------------

StreamAeadFiles::~StreamAeadFiles() {
    if (in_fd_ >= 0) ::close(in_fd_);
}

Result<void> StreamAeadFiles::open_input(const std::string &path, bool need_size) {
    in_path_ = path;
    in_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_fd_ < 0) return fail(errno_error(errno, "cannot open", path));
    struct stat st {};
    if (::fstat(in_fd_, &st) != 0) return fail(errno_error(errno, "cannot stat", path));
    if (need_size && !S_ISREG(st.st_mode)) return fail(Errc::invalid_argument, fmt::format("'{}' is not a regular file", path));
    in_size_ = static_cast<std::uint64_t>(st.st_size);
    return success();
}

StreamAeadReadAt StreamAeadFiles::input_reader() const {
    return [fd = in_fd_, path = in_path_](std::uint64_t offset, std::span<std::byte> buf) -> Result<std::size_t> {
        for (;;) {
            const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(offset));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(errno_error(errno, "cannot read", path));
            return static_cast<std::size_t>(n);
        }
    };
}

Error StreamAeadFiles::decrypting(const Error &error) const {
    return error.with_context(fmt::format("decrypting '{}'", in_path_));
}

Result<void> StreamAeadFiles::create_output(const std::string &path, bool overwrite, bool plaintext) {
    HSDK_TRY(out_, outputs_.add(path, overwrite));
    // Readable by its owner only, before a byte of it is written (a device keeps its own mode).
    if (plaintext && !out_->in_place() && ::fchmod(out_->fd(), 0600) != 0)
        return fail(errno_error(errno, "cannot set the mode of", path));
    return success();
}

Result<void> StreamAeadFiles::append(std::span<const std::byte> bytes) {
    HSDK_TRYV(out_->write_all(written_, bytes));
    written_ += bytes.size();
    return success();
}

StreamAeadSink StreamAeadFiles::output_sink() {
    return [this](std::span<const std::byte> bytes) { return append(bytes); };
}

Result<void> StreamAeadFiles::copy_input(const StreamAeadSink &write) {
    std::vector<std::byte> buf(16 * stream_aead_chunk_size);
    Result<void> result = success();
    for (;;) {
        const ssize_t n = ::read(in_fd_, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            result = fail(errno_error(errno, "cannot read", in_path_));
            break;
        }
        if (n == 0) break;
        if (result = write(std::span(buf).first(static_cast<std::size_t>(n))); !result) break;
    }
    OPENSSL_cleanse(buf.data(), buf.size());
    return result;
}

Result<void> StreamAeadFiles::write_chunks(std::uint64_t count, const StreamAeadReadChunk &read_chunk) {
    std::vector<std::byte> plain(stream_aead_chunk_size);
    Result<void> result = success();
    for (std::uint64_t i = 0; i < count && result; ++i) {
        auto got = read_chunk(i, plain);
        if (!got) {
            result = fail(decrypting(got.error()));
            break;
        }
        result = append(std::span(plain).first(got.value()));
    }
    OPENSSL_cleanse(plain.data(), plain.size());
    return result;
}

Result<void> StreamAeadFiles::commit() {
    if (out_->in_place()) HSDK_TRYV(out_->truncate(written_));  // the image's length, for a device written in place
    return outputs_.commit();
}

}  // namespace hypersdk::io
