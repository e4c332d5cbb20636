// An encrypted file (hypersdk's aes-256-gcm envelope, io/encryption.hpp) read as the plaintext it
// holds: every image command takes encrypted images directly, decrypting only the chunks it reads
// and authenticating each one before any of its bytes are used.
#pragma once

#include "io/encryption.hpp"

#include <hypersdk/byte_source.hpp>

#include <memory>
#include <string>

namespace hypersdk::io {

// Where the key of an encrypted file or output comes from: exactly one of the three.
struct KeySpec {
    std::string passphrase_file, passphrase_env, key_file;
    [[nodiscard]] bool empty() const noexcept { return passphrase_file.empty() && passphrase_env.empty() && key_file.empty(); }
};

// The key; invalid_argument when none or more than one source is given.
Result<EncryptionKey> key_from_spec(const KeySpec &spec);

// The plaintext of `encrypted` (checks the header and the first chunk now: a wrong key fails here).
Result<std::shared_ptr<ByteSource>> open_decrypted_source(std::shared_ptr<const ByteSource> encrypted, const EncryptionKey &key);

// `source` as it is, or its plaintext when it starts with the envelope's header: then `spec` must
// name the key, else invalid_argument says which flags give it. A plain source ignores `spec`.
Result<std::shared_ptr<ByteSource>> decrypt_if_encrypted(std::shared_ptr<ByteSource> source, const KeySpec &spec);

}  // namespace hypersdk::io
