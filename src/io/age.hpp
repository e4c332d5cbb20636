// The age file format, v1 (https://age-encryption.org/v1, the C2SP "age" specification): files that
// the `age` tool (and rage, and every other implementation) writes and reads, encrypted to X25519
// recipients ("age1...") or with a passphrase (scrypt).
//
//   file    = header || nonce (16 bytes) || chunk 0 || chunk 1 || ... || chunk n-1
//   header  = "age-encryption.org/v1\n" || stanza... || "--- " base64(HMAC-SHA256) "\n"
//   stanza  = "-> X25519 <ephemeral share>\n<body>" or "-> scrypt <salt> <log2 work>\n<body>", the
//             body (the wrapped 16-byte file key) in unpadded base64 lines of 64 columns ending
//             with a shorter (possibly empty) line
//   chunk   = ChaCha20-Poly1305(payload key, nonce = counter (11 bytes, BE) || last (1 byte)) of
//             64 KiB of plaintext (the last chunk: 1..64 KiB, empty only when the whole file is)
//   payload key = HKDF-SHA256(ikm = file key, salt = nonce, info = "payload")
//
// The API mirrors io/encryption.hpp (our own "aes-256-gcm" envelope), so callers can treat the two
// alike: a streaming writer with a sink, a thread-safe random-access reader over a read callback,
// and atomic whole-file encrypt/decrypt. Everything is built on OpenSSL 3 (X25519,
// ChaCha20-Poly1305, HKDF, HMAC, scrypt); secrets live in wiped buffers and are never printed.
//
// Not supported (they fail with a clear unsupported error): plugin, SSH and post-quantum
// (age1pq1...) recipients and identities, passphrase-protected identity files, and format versions
// other than v1. Writing ASCII armor is not supported (nothing here needs it); reading it is.
#pragma once

#include "io/encryption.hpp"

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

namespace hypersdk::io {

// ---- format constants (age-encryption.org/v1) ------------------------------------------------
inline constexpr std::string_view age_version_line = "age-encryption.org/v1\n";
inline constexpr std::string_view age_armor_begin = "-----BEGIN AGE ENCRYPTED FILE-----";
inline constexpr std::string_view age_armor_end = "-----END AGE ENCRYPTED FILE-----";
inline constexpr std::size_t age_chunk_size = 65536;  // plaintext bytes of every chunk but the last
inline constexpr std::size_t age_tag_size = 16;
inline constexpr std::size_t age_sealed_chunk_size = age_chunk_size + age_tag_size;
inline constexpr std::size_t age_file_key_size = 16;
inline constexpr std::size_t age_payload_nonce_size = 16;
inline constexpr std::size_t age_x25519_key_size = 32;
// The `age` tool's work factor for passphrases (2^18 iterations of scrypt, r = 8: 256 MiB, about a
// second). Readers refuse more than 22 (4 GiB, many seconds), as the age tool does by default, so a
// hostile header cannot make us allocate or compute without bound.
inline constexpr int age_default_scrypt_work = 18;
inline constexpr int age_max_scrypt_work = 22;

// Whether `first_bytes` (the first bytes of a file; 64 are plenty) start like an age file: the
// binary header's "age-encryption.org/" (v1, or a later version that the reader then refuses as
// unsupported, which says more than "not encrypted"), or the ASCII armor's
// "-----BEGIN AGE ENCRYPTED FILE-----" after optional whitespace. Needs no key.
[[nodiscard]] bool looks_like_age(std::span<const std::byte> first_bytes) noexcept;

// ---- recipients and identities -----------------------------------------------------------------

// An X25519 recipient: a public key, safe to print and copy.
struct AgeRecipient {
    std::array<unsigned char, age_x25519_key_size> public_key{};

    // "age1..." (Bech32, HRP "age", lowercase as age-keygen prints it).
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const AgeRecipient &, const AgeRecipient &) = default;
};

// Parses "age1..." (surrounding whitespace ignored). Errors name the recipient (it is public) and
// what is wrong with it: a bad checksum (a typo), mixed case, the wrong length, or a type this
// build does not support (age1pq1..., plugins, SSH keys). A string that looks like a secret key is
// refused without being repeated.
Result<AgeRecipient> parse_age_recipient(std::string_view text);
// `age -R`: a recipients file, one recipient a line; "#" comments and blank lines are skipped.
Result<std::vector<AgeRecipient>> read_age_recipients_file(const std::string &path);

// An X25519 identity (secret key). Copyable; the secret is wiped when an instance is destroyed and
// there is no way to read or print it: only this module uses it (to unwrap file keys).
class AgeIdentity {
public:
    // "AGE-SECRET-KEY-1..." (Bech32, HRP "AGE-SECRET-KEY-", uppercase as age-keygen writes it).
    // Errors never contain the text.
    static Result<AgeIdentity> parse(std::string_view text);
    // A fresh random identity (tests; a future keygen).
    static Result<AgeIdentity> generate();

    AgeIdentity(const AgeIdentity &) = default;
    AgeIdentity(AgeIdentity &&) noexcept = default;
    AgeIdentity &operator=(const AgeIdentity &) = default;
    AgeIdentity &operator=(AgeIdentity &&) noexcept = default;
    ~AgeIdentity();

    // The public half: what `age-keygen -y` prints.
    [[nodiscard]] const AgeRecipient &recipient() const noexcept { return recipient_; }

private:
    AgeIdentity() = default;
    friend struct AgeKeyAccess;
    std::array<unsigned char, age_x25519_key_size> secret_{};
    AgeRecipient recipient_;
};

// An identity file as age-keygen writes it: "# comments", blank lines and one AGE-SECRET-KEY-1...
// a line (CRLF accepted). The file may be readable by its group or others (age allows it, and a
// key held by a shared service account is common); nothing of its content appears in errors, which
// name the line. Other identity types (plugins, SSH keys, post-quantum keys, a passphrase-encrypted
// identity file) are unsupported; a file without identities is invalid_argument.
Result<std::vector<AgeIdentity>> read_age_identity_file(const std::string &path);

// What encrypts a file: recipients, or else a passphrase (exactly one of the two; age forbids
// mixing, since a passphrase file must authenticate its sender).
struct AgeEncryptKeys {
    std::vector<AgeRecipient> recipients;
    std::optional<EncryptionKey> passphrase;  // Kind::passphrase; used as its exact bytes
    int scrypt_log2_work = age_default_scrypt_work;  // 1..22
};

// What decrypts a file: identities, a passphrase, or both (a command given both tries whichever
// the file was made for: a passphrase file has a single scrypt stanza).
struct AgeDecryptKeys {
    std::vector<AgeIdentity> identities;
    std::optional<EncryptionKey> passphrase;
};

// ---- writing ---------------------------------------------------------------------------------

// Tests only: a stanza of a type no reader knows (age's "grease"), written before the real ones.
// Readers must skip it; a passphrase file with one must be refused (scrypt stanzas stand alone).
struct AgeExtraStanza {
    std::vector<std::string> args;  // each non-empty, printable ASCII without spaces
    std::vector<std::byte> body;
};

// Streams plaintext into an age file (binary, not armored). Not thread-safe (one producer). The
// header and payload nonce go to the sink in create_*(); each chunk when it is sealed, whole and in
// order. finish() seals the last chunk (flagged as last): a file whose writer never finished lacks
// it and readers (ours and age) report it as truncated. After a failure every further call fails.
class AgeWriter {
public:
    // A fresh file key, one X25519 stanza per recipient (each with its own ephemeral key).
    static Result<AgeWriter> create_for_recipients(const std::vector<AgeRecipient> &recipients, EnvelopeSink sink);
    // One scrypt stanza; deriving the wrapping key takes the scrypt time here (about a second at
    // the default 18). `passphrase` must be a passphrase, not a raw key.
    static Result<AgeWriter> create_for_passphrase(const EncryptionKey &passphrase, EnvelopeSink sink,
                                                   int scrypt_log2_work = age_default_scrypt_work);
    // Either of the above from `keys`.
    static Result<AgeWriter> create(const AgeEncryptKeys &keys, EnvelopeSink sink);
    // Tests only (see AgeExtraStanza): `extra` goes before the real stanzas.
    static Result<AgeWriter> create_with_extra_stanzas_for_tests(const AgeEncryptKeys &keys, EnvelopeSink sink,
                                                                 const std::vector<AgeExtraStanza> &extra);

    AgeWriter(AgeWriter &&) noexcept;
    AgeWriter &operator=(AgeWriter &&) noexcept;
    ~AgeWriter();

    Result<void> write(std::span<const std::byte> data);
    Result<void> finish();

    [[nodiscard]] bool finished() const noexcept;
    [[nodiscard]] std::uint64_t plaintext_bytes() const noexcept;  // accepted by write() so far
    [[nodiscard]] std::uint64_t encrypted_bytes() const noexcept;  // handed to the sink so far

private:
    struct State;
    explicit AgeWriter(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// Size of the age file AgeWriter writes for `plaintext_size` bytes behind a header of
// `header_size` bytes: header + 16 + plaintext + 16 * max(1, ceil(plaintext / 64 KiB)).
[[nodiscard]] std::uint64_t age_encrypted_size(std::uint64_t header_size, std::uint64_t plaintext_size) noexcept;

// ---- reading ---------------------------------------------------------------------------------

// What a header says, readable without a key (for `info` and to tell which key a file needs).
struct AgeHeaderInfo {
    bool armored = false;
    std::vector<std::string> stanza_types;  // first argument of each stanza, in order ("X25519", ...)
    std::optional<int> scrypt_log2_work;    // set for a passphrase file
    std::uint64_t header_size = 0;          // bytes up to the payload nonce (of the decoded file)
    [[nodiscard]] bool passphrase() const noexcept { return scrypt_log2_work.has_value(); }
};
// Parses the header of the age file behind `read_at` (armored or not). Errors as AgeReader's open.
Result<AgeHeaderInfo> inspect_age_header(const EnvelopeReadAt &read_at, std::uint64_t size);

// Random access to the plaintext of an age file. Every chunk is authenticated (its tag, its
// position and whether it is the last) before any of its bytes reach the caller. Thread-safe:
// read_at may be called concurrently (a small cache of decrypted chunks sits behind a mutex).
//
// ASCII armor is supported here too: open() decodes the whole armored file first (strictly, as the
// spec asks: canonical padded base64 in 64-column lines between the BEGIN and END lines, LF or
// CRLF, only whitespace outside) into memory when it is at most 64 MiB, else into an unlinked
// temporary file in $TMPDIR (it holds ciphertext only), and then reads that like a binary file.
//
// Errors:
//   invalid_argument  not an age file; no keys given
//   unsupported       another format version; scrypt work factor over 22 (named)
//   auth_failed       no identity matches a recipient; wrong passphrase; a passphrase file opened
//                     with identities only (or the reverse); the header MAC does not match (the
//                     header was changed)
//   corrupt_image     a malformed header or armor (non-canonical base64, a bad line, an scrypt
//                     stanza beside others, a low-order X25519 share, ...); a payload that is
//                     truncated, extended, reordered or damaged
class AgeReader {
public:
    // Parses the header, unwraps the file key, checks the header MAC, works out the chunk layout
    // from `size` and authenticates the last chunk (so plaintext_size() can be trusted, as the spec
    // requires before seeking from the end). scrypt is slow by design.
    static Result<AgeReader> open(const AgeDecryptKeys &keys, EnvelopeReadAt read_at, std::uint64_t size);
    static Result<AgeReader> open_with_identities(const std::vector<AgeIdentity> &identities, EnvelopeReadAt read_at,
                                                  std::uint64_t size);
    static Result<AgeReader> open_with_passphrase(const EncryptionKey &passphrase, EnvelopeReadAt read_at,
                                                  std::uint64_t size);

    AgeReader(AgeReader &&) noexcept;
    AgeReader &operator=(AgeReader &&) noexcept;
    ~AgeReader();

    [[nodiscard]] std::uint64_t plaintext_size() const noexcept;
    [[nodiscard]] std::uint64_t chunk_count() const noexcept;
    [[nodiscard]] const AgeHeaderInfo &header() const noexcept;

    // Reads up to out.size() plaintext bytes at `offset`; fewer only at the end (0 at or past it).
    // A chunk that fails authentication fails the call and none of its bytes are copied to `out`
    // (bytes of earlier, verified chunks of the same call may have been).
    Result<std::size_t> read_at(std::uint64_t offset, std::span<std::byte> out) const;
    // Decrypts chunk `index` whole into `out` (at least age_chunk_size bytes) and returns its
    // plaintext length. For sequential consumers; `out` is untouched on failure.
    Result<std::size_t> read_chunk(std::uint64_t index, std::span<std::byte> out) const;
    // Authenticates every chunk (no output).
    Result<void> verify_all() const;

private:
    struct State;
    explicit AgeReader(std::unique_ptr<State> state);
    // The three open()s: identities, a passphrase, or both (nullptr: none).
    static Result<AgeReader> open_keys(std::span<const AgeIdentity> identities, const EncryptionKey *passphrase,
                                       EnvelopeReadAt read_at, std::uint64_t size);
    std::unique_ptr<State> state_;
};

// ---- whole files -----------------------------------------------------------------------------

// Both write `out_path` through io/atomic_output (a temporary beside it, renamed only on success,
// removed on failure; a block or character device is written in place). With overwrite false an
// existing `out_path` fails with conflict. age_encrypt_file writes binary age (no armor).
// age_decrypt_file reads binary or armored input, authenticates every chunk before any of its bytes
// are written, and creates its output with mode 0600 (it is plaintext).
Result<void> age_encrypt_file(const AgeEncryptKeys &keys, const std::string &in_path, const std::string &out_path,
                              bool overwrite = true);
Result<void> age_decrypt_file(const AgeDecryptKeys &keys, const std::string &in_path, const std::string &out_path,
                              bool overwrite = true);

}  // namespace hypersdk::io
