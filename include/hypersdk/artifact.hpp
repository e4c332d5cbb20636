// What is done to an output after its bytes are right: compressed as a stream and encrypted.
// docs/encryption.md and docs/compression.md describe the formats. Only where keys come from is
// held here (files, environment variables, public keys), never a key or passphrase itself, so these
// structures can be logged, stored with a job and returned in results.
#pragma once

#include <string>
#include <vector>

namespace hypersdk {

// How an output is encrypted; it keeps the name it was given.
struct EncryptionOptions {
    // aes-256-gcm (built in, docs/encryption.md), age (the age v1 format) or gpg (OpenPGP).
    std::string method = "aes-256-gcm";
    // aes-256-gcm: exactly one of the three. age: passphrase_file or passphrase_env (scrypt) instead
    // of recipients.
    std::string passphrase_file, passphrase_env, key_file;
    std::vector<std::string> recipients;      // age: X25519 public keys, "age1..."
    std::vector<std::string> gpg_recipients;  // gpg: key IDs, fingerprints or user IDs
    std::string gpg_home;                     // gpg: GNUPGHOME for this call (empty: gpg's default)
};

// Where the keys of encrypted inputs come from. The method is recognised from each file's header;
// an OpenPGP file is decrypted by gpg's agent (no option needed).
struct DecryptionKeys {
    std::string passphrase_file, passphrase_env, key_file;  // aes-256-gcm and age passphrases
    std::vector<std::string> identities;                    // age identity files (age-keygen's)
    std::string gpg_home;
    [[nodiscard]] bool empty() const noexcept {
        return passphrase_file.empty() && passphrase_env.empty() && key_file.empty() && identities.empty();
    }
};

// What an encrypted output records: who can open it. Never a secret.
struct EncryptionRecord {
    std::string method;                   // aes-256-gcm, age, gpg
    std::string key;                      // "passphrase", "key file" or "recipients"
    std::vector<std::string> recipients;  // age public keys as given; gpg fingerprints of the keys used
};

// Compression of a whole output as a stream: gzip (.gz), zstd (.zst) or lz4 (lz4 frames, .lz4).
// Written in independent units so readers can seek and decompress in parallel, and readable by the
// stock gzip, zstd and lz4 tools.
struct CompressionOptions {
    std::string method;  // empty: none
    int level = 0;       // 0: the method's default (gzip 6, zstd 3, lz4 0 = fast)
    [[nodiscard]] bool empty() const noexcept { return method.empty() || method == "none"; }
};

}  // namespace hypersdk
