#include "artifact_flags.hpp"

#include <fmt/format.h>

#include <cstring>

namespace hsdk {

json KeyFlags::decrypt_request() const {
    json k = json::object();
    if (!passphrase_file.empty()) k["passphrase_file"] = passphrase_file;
    if (!passphrase_env.empty()) k["passphrase_env"] = passphrase_env;
    if (!key_file.empty()) k["key_file"] = key_file;
    if (!identities.empty()) k["identity"] = identities;
    if (!gpg_home.empty()) k["gpg_home"] = gpg_home;
    return k;
}

void add_key_flags(CLI::App *app, KeyFlags &keys, const std::string &what, bool with_identity) {
    auto *pf = app->add_option("--passphrase-file", keys.passphrase_file, "Passphrase of " + what + ": the first line of FILE");
    auto *pe = app->add_option("--passphrase-env", keys.passphrase_env, "Passphrase of " + what + ": the environment variable VAR");
    auto *kf = app->add_option("--key-file", keys.key_file, "Key of " + what + " (aes-256-gcm): a file of 32 random bytes (mode 0600)");
    pf->excludes(pe)->excludes(kf);
    pe->excludes(kf);
    if (!with_identity) return;
    app->add_option("--identity", keys.identities, "age identity file (age-keygen's) of " + what + " (repeatable)")->allow_extra_args(false);
    app->add_option("--gpg-home", keys.gpg_home, "GnuPG home (GNUPGHOME) for gpg-encrypted files; gpg's agent decrypts them");
}

void add_encrypt_flags(CLI::App *app, EncryptFlags &flags) {
    app->add_flag("--encrypt", flags.encrypt,
                  "Encrypt the output (it keeps its name): aes-256-gcm with --passphrase-file, --passphrase-env or --key-file; "
                  "age to --recipient or with a passphrase; gpg to --gpg-recipient");
    app->add_option("--encrypt-method", flags.method, "aes-256-gcm (default, built in), age or gpg")
        ->check(CLI::IsMember({"aes-256-gcm", "age", "gpg"}));
    app->add_option("--recipient", flags.recipients, "age: encrypt to this public key, age1... (repeatable)")->allow_extra_args(false);
    app->add_option("--gpg-recipient", flags.gpg_recipients, "gpg: encrypt to this key ID, fingerprint or user ID (repeatable)")->allow_extra_args(false);
}

bool add_encrypt_request(const EncryptFlags &flags, const KeyFlags &keys, json &request, std::string &error) {
    if (!flags.encrypt) {
        if (!flags.recipients.empty() || !flags.gpg_recipients.empty() || flags.method != "aes-256-gcm") {
            error = "--encrypt-method, --recipient and --gpg-recipient describe an encrypted output: give --encrypt too";
            return false;
        }
        return true;
    }
    std::string method = flags.method;
    // A recipient says which method is meant.
    if (method == "aes-256-gcm" && !flags.recipients.empty()) method = "age";
    if (method == "aes-256-gcm" && !flags.gpg_recipients.empty()) method = "gpg";
    request["encrypt"] = true;
    request["encrypt_method"] = method;
    if (!keys.passphrase_file.empty()) request["passphrase_file"] = keys.passphrase_file;
    if (!keys.passphrase_env.empty()) request["passphrase_env"] = keys.passphrase_env;
    if (!keys.key_file.empty()) request["key_file"] = keys.key_file;
    if (!flags.recipients.empty()) request["recipient"] = flags.recipients;
    if (!flags.gpg_recipients.empty()) request["gpg_recipient"] = flags.gpg_recipients;
    if (!keys.gpg_home.empty()) request["gpg_home"] = keys.gpg_home;
    return true;
}

void add_compress_flags(CLI::App *app, CompressFlags &flags, const std::string &native_help, bool with_stream) {
    app->add_flag("-c", flags.native, native_help);
    if (!with_stream) {
        // An option, not a flag, so that the --compress=native the parser is handed works here too.
        app->add_option("--compress", flags.method, native_help)->expected(0, 1)->check(CLI::IsMember({"native"}));
        return;
    }
    app->add_option("--compress", flags.method,
                    "Without a value: as -c. gzip, zstd or lz4: the output compressed as a stream (raw disks; an OVF/OVA's disk "
                    "files with gzip, a whole OVA with zstd or lz4)")
        ->expected(0, 1)
        ->check(CLI::IsMember({"native", "gzip", "zstd", "lz4"}));
    app->add_option("--compress-level", flags.level, "Level of --compress gzip|zstd|lz4 (gzip 1-9, zstd 1-19, lz4 1-12; default: the method's)");
}

bool add_compress_request(const CompressFlags &flags, json &request, std::string &error) {
    const bool stream = !flags.method.empty() && flags.method != "native";
    if (flags.level != 0 && !stream) {
        error = "--compress-level goes with --compress gzip|zstd|lz4";
        return false;
    }
    if (stream) request["compress"] = flags.method;
    else request["compress"] = flags.native || flags.method == "native";
    if (flags.level != 0) request["compress_level"] = flags.level;
    return true;
}

void normalise_compress_argument(int argc, char **argv, std::vector<std::string> &storage, std::vector<char *> &out) {
    storage.clear();
    storage.reserve(static_cast<std::size_t>(argc));
    for (int i = 0; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--compress") {
            const bool has_value = i + 1 < argc && (std::strcmp(argv[i + 1], "gzip") == 0 || std::strcmp(argv[i + 1], "zstd") == 0 ||
                                                    std::strcmp(argv[i + 1], "lz4") == 0 || std::strcmp(argv[i + 1], "native") == 0);
            if (!has_value) arg = "--compress=native";
        }
        storage.push_back(std::move(arg));
    }
    out.clear();
    for (auto &s : storage) out.push_back(s.data());
    out.push_back(nullptr);
}

}  // namespace hsdk
