#include "io/key_spec.hpp"

namespace hypersdk::io {

Result<EncryptionKey> key_from_spec(const KeySpec &spec) {
    const int given = !spec.passphrase_file.empty() + !spec.passphrase_env.empty() + !spec.key_file.empty();
    if (given != 1)
        return fail(Errc::invalid_argument, given == 0 ? "no key given: give one of passphrase_file, passphrase_env or key_file"
                                                       : "give one of passphrase_file, passphrase_env or key_file, not several");
    if (!spec.passphrase_file.empty()) return key_from_passphrase_file(spec.passphrase_file);
    if (!spec.passphrase_env.empty()) return key_from_passphrase_env(spec.passphrase_env);
    return key_from_key_file(spec.key_file);
}

}  // namespace hypersdk::io
