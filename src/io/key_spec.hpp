// Where the key of an aes-256-gcm file or output comes from (io/encryption.hpp). Encrypted sources
// of every method are opened by io/artifact_crypto.hpp.
#pragma once

#include "io/encryption.hpp"

#include <string>

namespace hypersdk::io {

// Where the key of an encrypted file or output comes from: exactly one of the three.
struct KeySpec {
    std::string passphrase_file, passphrase_env, key_file;
    [[nodiscard]] bool empty() const noexcept { return passphrase_file.empty() && passphrase_env.empty() && key_file.empty(); }
};

// The key; invalid_argument when none or more than one source is given.
Result<EncryptionKey> key_from_spec(const KeySpec &spec);

}  // namespace hypersdk::io
