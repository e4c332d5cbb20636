// The flags of compressed and encrypted outputs and of encrypted inputs, shared by convert, export,
// backup, restore, kvm import and the file commands: one spelling everywhere, as the operations'
// request keys (encrypt, encrypt_method, passphrase_file, passphrase_env, key_file, recipient,
// gpg_recipient, gpg_home, identity, compress, compress_level).
#pragma once

#include "cli_support.hpp"

#include <string>
#include <vector>

namespace hsdk {

using json = nlohmann::json;

// Where keys come from: never a key or passphrase on the command line itself.
struct KeyFlags {
    std::string passphrase_file, passphrase_env, key_file, gpg_home;
    std::vector<std::string> identities;  // age identity files
    // The "decrypt" object of a request (empty when no key flag was given).
    [[nodiscard]] json decrypt_request() const;
};
// --passphrase-file, --passphrase-env, --key-file; with_identity adds --identity and --gpg-home.
void add_key_flags(CLI::App *app, KeyFlags &keys, const std::string &what, bool with_identity = true);

struct EncryptFlags {
    bool encrypt = false;
    std::string method = "aes-256-gcm";
    std::vector<std::string> recipients, gpg_recipients;
};
// --encrypt, --encrypt-method, --recipient (repeatable), --gpg-recipient (repeatable).
void add_encrypt_flags(CLI::App *app, EncryptFlags &flags);
// Adds encrypt: true and the key keys to `request` when --encrypt was given; false (with `error`
// set) when the flags do not fit together.
bool add_encrypt_request(const EncryptFlags &flags, const KeyFlags &keys, json &request, std::string &error);

// "--compress" alone asks for the output format's own compression (qemu-img's -c); "--compress
// gzip|zstd|lz4" (or --compress=METHOD) for the output compressed as a stream.
struct CompressFlags {
    bool native = false;     // -c
    std::string method;      // --compress[=METHOD]; "native" when given without one
    unsigned level = 0;      // --compress-level
};
void add_compress_flags(CLI::App *app, CompressFlags &flags, const std::string &native_help, bool with_stream = true);
// Sets compress (true or the method) and compress_level.
bool add_compress_request(const CompressFlags &flags, json &request, std::string &error);

// CLI11 lets an option with an optional value take the next word as its value, so "--compress
// in.raw out.qcow2" would lose the source: a bare --compress not followed by a method becomes
// --compress=native before parsing.
void normalise_compress_argument(int argc, char **argv, std::vector<std::string> &storage, std::vector<char *> &out);

}  // namespace hsdk
