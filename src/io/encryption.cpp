#include "io/encryption.hpp"

#include "core/endian.hpp"
#include "io/stream_aead.hpp"

#include <fmt/format.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>

namespace hypersdk::io {

// The one place that reads an EncryptionKey's secret (declared a friend in the header).
struct EnvelopeKeyAccess {
    static std::span<const unsigned char> secret(const EncryptionKey &key) noexcept { return key.secret_; }
};

namespace {

constexpr std::array<unsigned char, envelope_magic_size> envelope_magic = {'H', 'S', 'D', 'K', 'E', 'N', 'C', '\0'};
constexpr std::string_view envelope_hkdf_info = "hypersdk-enc v1";
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
using EnvelopeSecret = stream_aead_detail::SecretBytes<envelope_key_size>;
static_assert(envelope_chunk_size == stream_aead_chunk_size && envelope_tag_size == stream_aead_tag_size &&
              envelope_key_size == stream_aead_key_size);

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

// The file key: HKDF-SHA256(ikm = scrypt(passphrase) or the raw key, salt = header salt,
// info = "hypersdk-enc v1").
Result<void> envelope_derive_file_key(const EncryptionKey &key, const EnvelopeHeaderInfo &info,
                                      std::span<const unsigned char> salt, EnvelopeSecret &out) {
    const auto secret = EnvelopeKeyAccess::secret(key);
    if (info.kdf == EnvelopeKdf::scrypt) {
        if (key.kind() != EncryptionKey::Kind::passphrase)
            return fail(Errc::auth_failed, "the file was encrypted with a passphrase, not a key file (give "
                                           "--passphrase-file or --passphrase-env)");
        EnvelopeSecret ikm;
        HSDK_TRYV(stream_aead_detail::scrypt("encryption", secret, salt, info.scrypt.log2_n, info.scrypt.r, info.scrypt.p,
                                             ikm.bytes));
        return stream_aead_detail::hkdf_sha256("encryption", ikm.bytes, salt, envelope_hkdf_info, out.bytes);
    }
    if (key.kind() != EncryptionKey::Kind::raw_key)
        return fail(Errc::auth_failed, "the file was encrypted with a key file, not a passphrase (give --key-file)");
    return stream_aead_detail::hkdf_sha256("encryption", secret, salt, envelope_hkdf_info, out.bytes);
}

// The envelope's words for what the chunk layer finds (docs/encryption.md, "Errors").
Error envelope_stream_error(StreamAeadFault fault, std::uint64_t n) {
    switch (fault) {
    case StreamAeadFault::writer_failed: return {Errc::invalid_argument, "encryption: the envelope writer failed earlier"};
    case StreamAeadFault::writer_finished: return {Errc::invalid_argument, "encryption: the envelope is already finished"};
    case StreamAeadFault::too_large:
        return {Errc::invalid_argument, "encryption: the data is larger than one envelope holds (256 TiB)"};
    case StreamAeadFault::ends_early:
        return fail_corrupt(fmt::format("encrypted file is truncated (it ends before byte {} that its size promised)", n))
            .error();
    case StreamAeadFault::no_chunk: return fail_corrupt("encrypted file is truncated (it has no chunk)").error();
    case StreamAeadFault::partial_tag:
        return fail_corrupt(fmt::format("encrypted file is truncated or has bytes after its last chunk (its last {} bytes "
                                        "are shorter than a chunk tag)",
                                        n))
            .error();
    case StreamAeadFault::empty_last_chunk: break;  // accepted: see envelope_stream_format
    case StreamAeadFault::too_many_chunks:
        return fail_corrupt(fmt::format("encrypted file has {} chunks (at most 2^32)", n)).error();
    case StreamAeadFault::last_missing: return fail_corrupt("encrypted file is truncated (its last chunk is missing)").error();
    case StreamAeadFault::data_after_last:
        return fail_corrupt(fmt::format("encrypted file has data after its last chunk (chunk {})", n)).error();
    case StreamAeadFault::bad_chunk:
        // Chunk 0 is checked at open: failing there, the key (or the header, the associated data)
        // is far more likely wrong than the data damaged.
        if (n == 0) return {Errc::auth_failed, "wrong passphrase or key, or the header was changed"};
        return {Errc::checksum_mismatch, fmt::format("encrypted file: chunk {} failed authentication (damaged or reordered)", n)};
    }
    return {Errc::internal, fmt::format("encryption: unexpected chunk fault {}", static_cast<int>(fault))};
}

// AES-256-GCM; nonce = prefix (7, from the header) || counter (4) || last; the header is the
// associated data. A last chunk of 0 bytes after full ones is never written but is valid.
constexpr StreamAeadFormat envelope_stream_format{"encryption", "AES-256-GCM", envelope_nonce_prefix_size, true,
                                                  envelope_stream_error};

StreamAeadKey envelope_stream_key(const EnvelopeSecret &file_key, const EnvelopeHeaderBytes &header) {
    return {file_key.bytes, std::span(header).subspan(envelope_off_prefix, envelope_nonce_prefix_size), header};
}

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
    HSDK_TRY(auto data, stream_aead_detail::read_small_file(path, envelope_max_passphrase_file, "passphrase file"));
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
    HSDK_TRY(auto data, stream_aead_detail::read_small_file(path, 4096, "key file", &st));
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
    StreamAeadWriter stream;
};

EnvelopeWriter::EnvelopeWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
EnvelopeWriter::EnvelopeWriter(EnvelopeWriter &&) noexcept = default;
EnvelopeWriter &EnvelopeWriter::operator=(EnvelopeWriter &&) noexcept = default;
EnvelopeWriter::~EnvelopeWriter() = default;

Result<EnvelopeWriter> EnvelopeWriter::create(const EncryptionKey &key, EnvelopeSink sink, const ScryptParams &scrypt) {
    std::array<std::byte, envelope_salt_size> salt{};
    std::array<std::byte, envelope_nonce_prefix_size> prefix{};
    HSDK_TRYV(stream_aead_detail::random_bytes("encryption", std::span(envelope_uc(salt.data()), salt.size())));
    HSDK_TRYV(stream_aead_detail::random_bytes("encryption", std::span(envelope_uc(prefix.data()), prefix.size())));
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
    EnvelopeHeaderBytes h{};
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

    EnvelopeSecret file_key;
    HSDK_TRYV(envelope_derive_file_key(key, info, std::span(h).subspan(envelope_off_salt, envelope_salt_size), file_key));
    auto state = std::make_unique<State>();
    HSDK_TRYV(state->stream.start(envelope_stream_format, envelope_stream_key(file_key, h), std::move(sink)));
    HSDK_TRYV(state->stream.emit(std::as_bytes(std::span(h))));
    return EnvelopeWriter(std::move(state));
}

Result<void> EnvelopeWriter::write(std::span<const std::byte> data) {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope writer was moved from");
    return state_->stream.write(data);
}

Result<void> EnvelopeWriter::finish() {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope writer was moved from");
    return state_->stream.finish();
}

bool EnvelopeWriter::finished() const noexcept { return state_ && state_->stream.finished(); }
std::uint64_t EnvelopeWriter::plaintext_bytes() const noexcept { return state_ ? state_->stream.plaintext_bytes() : 0; }
std::uint64_t EnvelopeWriter::envelope_bytes() const noexcept { return state_ ? state_->stream.emitted_bytes() : 0; }

// ---- reader ----------------------------------------------------------------------------------

struct EnvelopeReader::State {
    EnvelopeHeaderInfo info;
    StreamAeadReader stream;
};

EnvelopeReader::EnvelopeReader(std::unique_ptr<State> state) : state_(std::move(state)) {}
EnvelopeReader::EnvelopeReader(EnvelopeReader &&) noexcept = default;
EnvelopeReader &EnvelopeReader::operator=(EnvelopeReader &&) noexcept = default;
EnvelopeReader::~EnvelopeReader() = default;

Result<EnvelopeReader> EnvelopeReader::open(const EncryptionKey &key, EnvelopeReadAt read_at, std::uint64_t encrypted_size) {
    if (!read_at) return fail(Errc::invalid_argument, "encryption: no read callback for the envelope");
    // The header (or as much of it as the file holds: enough to tell another file from a cut one).
    EnvelopeHeaderBytes header{};
    const auto head = std::span(header).first(static_cast<std::size_t>(std::min<std::uint64_t>(encrypted_size, header.size())));
    HSDK_TRYV(stream_aead_read_exact(envelope_stream_format, read_at, 0, std::as_writable_bytes(head)));
    auto state = std::make_unique<State>();
    HSDK_TRY(state->info, parse_envelope_header(std::as_bytes(head)));
    HSDK_TRYV(state->stream.open(envelope_stream_format, std::move(read_at), envelope_header_size, encrypted_size));

    EnvelopeSecret file_key;
    const auto salt = std::span(header).subspan(envelope_off_salt, envelope_salt_size);
    HSDK_TRYV(envelope_derive_file_key(key, state->info, salt, file_key));
    // Chunk 0 now: a wrong key fails at open, not at the first read.
    HSDK_TRYV(state->stream.unlock(envelope_stream_key(file_key, header), 0));
    return EnvelopeReader(std::move(state));
}

std::uint64_t EnvelopeReader::plaintext_size() const noexcept { return state_ ? state_->stream.plaintext_size() : 0; }
std::uint64_t EnvelopeReader::chunk_count() const noexcept { return state_ ? state_->stream.chunk_count() : 0; }
const EnvelopeHeaderInfo &EnvelopeReader::header() const noexcept { return state_->info; }

Result<std::size_t> EnvelopeReader::read_at(std::uint64_t offset, std::span<std::byte> out) const {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope reader was moved from");
    return state_->stream.read_at(offset, out);
}

Result<std::size_t> EnvelopeReader::read_chunk(std::uint64_t index, std::span<std::byte> out) const {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope reader was moved from");
    return state_->stream.read_chunk(index, out);
}

Result<void> EnvelopeReader::verify_all() const {
    if (!state_) return fail(Errc::invalid_argument, "encryption: the envelope reader was moved from");
    return state_->stream.verify_all();
}

// ---- whole files -----------------------------------------------------------------------------

Result<void> encrypt_file(const EncryptionKey &key, const std::string &in_path, const std::string &out_path,
                          const ScryptParams &scrypt, bool overwrite) {
    return stream_aead_encrypt_file(in_path, out_path, overwrite, [&](EnvelopeSink sink) {
        return EnvelopeWriter::create(key, std::move(sink), scrypt);
    });
}

Result<void> decrypt_file(const EncryptionKey &key, const std::string &in_path, const std::string &out_path, bool overwrite) {
    return stream_aead_decrypt_file(in_path, out_path, overwrite, [&key](EnvelopeReadAt read_at, std::uint64_t size) {
        return EnvelopeReader::open(key, std::move(read_at), size);
    });
}

}  // namespace hypersdk::io
