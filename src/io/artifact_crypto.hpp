// One door to the three encryption methods (aes-256-gcm, age, gpg): encrypting a file with the
// method asked for, and decrypting a file or a byte source whatever method its header shows.
#pragma once

#include "io/key_spec.hpp"

#include <hypersdk/artifact.hpp>
#include <hypersdk/byte_source.hpp>
#include <hypersdk/cancel.hpp>

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::io {

enum class CryptMethod { none, aes_256_gcm, age, gpg };

[[nodiscard]] std::string_view crypt_method_name(CryptMethod method) noexcept;
// "aes-256-gcm", "age" or "gpg"; anything else is invalid_argument listing them.
Result<CryptMethod> parse_crypt_method(std::string_view name);
// The method a file's first bytes show (at least 64 of them, fewer only for a shorter file); none
// for a plain file. Needs no key.
[[nodiscard]] CryptMethod detect_crypt_method(std::span<const std::byte> first_bytes) noexcept;

// Refuses options that cannot work before any byte is written: the keys the method needs are there
// (and only those), recipients parse, gpg recipients resolve to usable keys.
Result<void> check_encryption(const EncryptionOptions &options);

// Encrypts `in_path` into `out_path` (atomic: a temporary beside it, renamed when complete; nothing
// is left on failure) and says who can open it.
Result<EncryptionRecord> encrypt_file_with(const EncryptionOptions &options, const std::string &in_path, const std::string &out_path,
                                           bool overwrite = true);
// Decrypts `in_path` (its method from its header) into `out_path` (mode 0600, atomic; every byte
// authenticated before it is published). Returns the method found.
Result<CryptMethod> decrypt_file_with(const DecryptionKeys &keys, const std::string &in_path, const std::string &out_path,
                                      bool overwrite = true);

// `source` as it is, or its plaintext when its header shows one of the three methods. aes-256-gcm
// and age are read in place with random access (only the chunks read are decrypted); OpenPGP has no
// random access, so an OpenPGP source is decrypted once into an unnamed temporary file (O_TMPFILE in
// $TMPDIR, mode 0600, gone when the source is) which is then read. The plaintext's references
// (backing files) are decrypted with the same keys.
Result<std::shared_ptr<ByteSource>> decrypt_source_if_encrypted(std::shared_ptr<ByteSource> source, const DecryptionKeys &keys,
                                                                const CancelToken &cancel = {});

// The keys of HttpSourceOptions (what every image command takes), and back.
[[nodiscard]] DecryptionKeys decryption_keys_of(const HttpSourceOptions &http);
void apply_decryption_keys(HttpSourceOptions &http, const DecryptionKeys &keys);

}  // namespace hypersdk::io
