// The built-in encryption envelope ("aes-256-gcm"): a streaming, random-access container that seals
// a byte stream in 64 KiB chunks with AES-256-GCM (the STREAM construction). The format is specified
// in docs/encryption.md; tests/data/encryption holds test vectors.
//
//   file   = header (64 bytes) || chunk 0 || chunk 1 || ... || chunk n-1
//   chunk  = AES-256-GCM(file key, nonce = prefix(7) || counter(4, BE) || last(1), aad = header)
//            as ciphertext || tag(16); every chunk but the last holds exactly 64 KiB
//
// Keys come from a passphrase (scrypt, costs in the header) or a 32-byte key file; either is turned
// into the per-file key with HKDF-SHA256 over the file's random salt. Secrets are never printed:
// EncryptionKey has no accessor, formatter or stream operator, and is wiped when destroyed.
#pragma once

#include <hypersdk/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::io {

// ---- format constants (docs/encryption.md) --------------------------------------------------
inline constexpr std::size_t envelope_magic_size = 8;  // "HSDKENC\0"
inline constexpr std::size_t envelope_header_size = 64;
inline constexpr std::size_t envelope_chunk_size = 65536;  // plaintext bytes of every chunk but the last
inline constexpr std::size_t envelope_tag_size = 16;
inline constexpr std::size_t envelope_sealed_chunk_size = envelope_chunk_size + envelope_tag_size;
inline constexpr std::size_t envelope_key_size = 32;
inline constexpr std::size_t envelope_salt_size = 32;
inline constexpr std::size_t envelope_nonce_prefix_size = 7;
inline constexpr std::uint8_t envelope_version = 1;
// At most 2^32 chunks (the counter is 32 bits): 256 TiB of plaintext.
inline constexpr std::uint64_t envelope_max_chunks = std::uint64_t{1} << 32;

// Whether `first_bytes` (at least the first 8 bytes of a file) start with the envelope's magic.
// This is how the method is recognised from a file's header; it needs no key.
[[nodiscard]] bool looks_encrypted(std::span<const std::byte> first_bytes) noexcept;

enum class EnvelopeKdf : std::uint8_t {
    raw_key = 0,  // a 32-byte key file
    scrypt = 1,   // a passphrase through scrypt
};

// scrypt costs: N = 2^log2_n, block size r, parallelism p. The defaults cost about 128 MiB and a
// fraction of a second. Accepted (when writing and reading): 1 <= log2_n <= 22, 1 <= r <= 32,
// 1 <= p <= 16, r * N <= 2^23 (scrypt's memory, 128 * r * N, at most 1 GiB) and r * p * N <= 2^25,
// so a hostile header cannot make a reader allocate or compute without bound.
struct ScryptParams {
    std::uint8_t log2_n = 17;
    std::uint32_t r = 8;
    std::uint32_t p = 1;
    friend bool operator==(const ScryptParams &, const ScryptParams &) = default;
};
// Errc::unsupported naming the parameter when `params` is outside the limits above.
Result<void> check_scrypt_params(const ScryptParams &params);

// What a header says, readable without a key (for `info` and error messages).
struct EnvelopeHeaderInfo {
    std::uint8_t version = envelope_version;
    EnvelopeKdf kdf = EnvelopeKdf::scrypt;
    ScryptParams scrypt;  // all zero for raw_key
    std::uint32_t chunk_size = envelope_chunk_size;
};
// Parses and validates the first envelope_header_size bytes of a file: "not a hypersdk encrypted
// file" (invalid_argument) for another magic, unsupported for an unknown version, KDF or chunk size
// or scrypt costs over the limits, corrupt_image for a malformed header.
Result<EnvelopeHeaderInfo> parse_envelope_header(std::span<const std::byte> header);

// Size of the envelope of `plaintext_size` bytes as EnvelopeWriter writes it:
// 64 + plaintext_size + 16 * max(1, ceil(plaintext_size / 65536)).
[[nodiscard]] std::uint64_t envelope_encrypted_size(std::uint64_t plaintext_size) noexcept;

// ---- keys ------------------------------------------------------------------------------------

// A passphrase or a raw 32-byte key. Copyable; the bytes are wiped when an instance is destroyed.
// It offers no way to read the secret back: only this module's writer and reader derive from it.
class EncryptionKey {
public:
    enum class Kind { passphrase, raw_key };

    // A passphrase is used as the exact bytes given (no normalisation); it must not be empty.
    static Result<EncryptionKey> from_passphrase(std::string_view passphrase);
    // Exactly 32 bytes.
    static Result<EncryptionKey> from_raw_key(std::span<const std::byte> key);

    EncryptionKey(const EncryptionKey &) = default;
    EncryptionKey(EncryptionKey &&) noexcept = default;
    EncryptionKey &operator=(const EncryptionKey &other);
    EncryptionKey &operator=(EncryptionKey &&other) noexcept;
    ~EncryptionKey();

    [[nodiscard]] Kind kind() const noexcept { return kind_; }
    // "passphrase" or "key file": safe to print.
    [[nodiscard]] std::string_view describe() const noexcept;

private:
    EncryptionKey(Kind kind, std::vector<unsigned char> secret) : kind_(kind), secret_(std::move(secret)) {}
    void wipe() noexcept;
    friend struct EnvelopeKeyAccess;
    friend struct AgeKeyAccess;
    Kind kind_ = Kind::passphrase;
    std::vector<unsigned char> secret_;
};

// `--passphrase-file`: the file's bytes, with one trailing "\n" or "\r\n" removed (files written by
// `echo` or an editor). Empty (after that) or over 64 KiB: invalid_argument.
Result<EncryptionKey> key_from_passphrase_file(const std::string &path);
// `--passphrase-env`: the variable's value as is. Unset: not_found; empty: invalid_argument.
Result<EncryptionKey> key_from_passphrase_env(const std::string &variable);
// `--key-file`: exactly 32 raw bytes. A regular file that its group or others may read is refused
// (permission_denied, the message names `chmod 600`); pipes and /dev/fd/N are read as they are.
Result<EncryptionKey> key_from_key_file(const std::string &path);

// ---- writing ---------------------------------------------------------------------------------

// Receives the envelope's bytes in order (the header first, then each sealed chunk whole).
using EnvelopeSink = std::function<Result<void>(std::span<const std::byte>)>;

// Streams plaintext into an envelope. Not thread-safe (one producer). The header goes to the sink
// in create(); each chunk when it is sealed. finish() seals the last chunk (flagged as last): an
// envelope whose writer never finished lacks it and every reader reports it as truncated. After a
// failure (a sink error included) every further call fails.
class EnvelopeWriter {
public:
    // A fresh random salt and nonce prefix; scrypt with `scrypt` for a passphrase (ignored, and
    // recorded as zeros, for a raw key). Deriving the key takes the scrypt time here.
    static Result<EnvelopeWriter> create(const EncryptionKey &key, EnvelopeSink sink, const ScryptParams &scrypt = {});
    // Tests and test vectors only: the given salt and nonce prefix instead of random ones. Two
    // envelopes with the same key, salt and prefix share their keystream; never use it for data.
    static Result<EnvelopeWriter> create_deterministic_for_tests(const EncryptionKey &key, EnvelopeSink sink,
                                                                 const ScryptParams &scrypt,
                                                                 std::span<const std::byte, envelope_salt_size> salt,
                                                                 std::span<const std::byte, envelope_nonce_prefix_size> nonce_prefix);

    EnvelopeWriter(EnvelopeWriter &&) noexcept;
    EnvelopeWriter &operator=(EnvelopeWriter &&) noexcept;
    ~EnvelopeWriter();

    Result<void> write(std::span<const std::byte> data);
    Result<void> finish();

    [[nodiscard]] bool finished() const noexcept;
    [[nodiscard]] std::uint64_t plaintext_bytes() const noexcept;  // accepted by write() so far
    [[nodiscard]] std::uint64_t envelope_bytes() const noexcept;   // handed to the sink so far

private:
    struct State;
    explicit EnvelopeWriter(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// ---- reading ---------------------------------------------------------------------------------

// Reads up to out.size() bytes of the envelope at `offset` and returns how many (0 only at its
// end; a short count is retried). Called from several threads at once when read_at is.
using EnvelopeReadAt = std::function<Result<std::size_t>(std::uint64_t offset, std::span<std::byte> out)>;

// Random access to the plaintext of an envelope. Every chunk is authenticated (its tag, its
// position and whether it is the last) before any of its bytes reach the caller. Thread-safe:
// read_at may be called concurrently (a small cache of decrypted chunks sits behind a mutex).
class EnvelopeReader {
public:
    // Parses the header, derives the key (scrypt for a passphrase: slow by design), checks that
    // `encrypted_size` is the size of a whole envelope and authenticates chunk 0, so a wrong key
    // fails here: auth_failed "wrong passphrase or key, or the header was changed".
    static Result<EnvelopeReader> open(const EncryptionKey &key, EnvelopeReadAt read_at, std::uint64_t encrypted_size);

    EnvelopeReader(EnvelopeReader &&) noexcept;
    EnvelopeReader &operator=(EnvelopeReader &&) noexcept;
    ~EnvelopeReader();

    [[nodiscard]] std::uint64_t plaintext_size() const noexcept;
    [[nodiscard]] std::uint64_t chunk_count() const noexcept;
    [[nodiscard]] const EnvelopeHeaderInfo &header() const noexcept;

    // Reads up to out.size() plaintext bytes at `offset`; fewer only at the end (0 at or past it).
    // A chunk that fails authentication fails the call and none of its bytes are copied to `out`
    // (bytes of earlier, verified chunks of the same call may have been).
    Result<std::size_t> read_at(std::uint64_t offset, std::span<std::byte> out) const;
    // Decrypts chunk `index` whole into `out` (at least envelope_chunk_size bytes) and returns its
    // plaintext length. For sequential consumers; `out` is untouched on failure.
    Result<std::size_t> read_chunk(std::uint64_t index, std::span<std::byte> out) const;
    // Authenticates every chunk (no output).
    Result<void> verify_all() const;

private:
    struct State;
    explicit EnvelopeReader(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// ---- whole files -----------------------------------------------------------------------------

// Both write `out_path` through io/atomic_output, as age_encrypt_file and age_decrypt_file do: under
// a temporary name beside it (".NAME.hsdk-PID-RANDOM.part"), flushed and renamed only on success;
// on failure the temporary is removed and nothing is left (a block or character device is written
// in place). With overwrite false an existing `out_path` fails with conflict. decrypt_file
// authenticates every chunk before any of its bytes are written; its output is readable by its
// owner only (mode 0600: it is plaintext).
Result<void> encrypt_file(const EncryptionKey &key, const std::string &in_path, const std::string &out_path,
                          const ScryptParams &scrypt = {}, bool overwrite = true);
Result<void> decrypt_file(const EncryptionKey &key, const std::string &in_path, const std::string &out_path,
                          bool overwrite = true);

}  // namespace hypersdk::io
