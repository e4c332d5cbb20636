// hsdk encrypt|decrypt IN OUT: a whole file into or out of aes-256-gcm (hypersdk's streaming
// envelope), age or OpenPGP (file.encrypt, file.decrypt; docs/encryption.md). Keys come from files,
// the environment, public keys or gpg's agent, never from the command line. hsdk compress|decompress
// IN OUT: gzip, zstd or lz4 streams (file.compress, file.decompress; docs/compression.md).
#include "artifact_flags.hpp"
#include "commands.hpp"

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

void register_encrypt(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("encrypt", "Encrypt a file with aes-256-gcm, age or gpg (the output appears only when complete)");
    struct Args {
        std::string in, out, method = "aes-256-gcm";
        KeyFlags keys;
        std::vector<std::string> recipients, gpg_recipients;
        bool overwrite = false, json = false;
    };
    auto a = std::make_shared<Args>();
    add_key_flags(app, a->keys, "the output", false);
    app->add_option("--gpg-home", a->keys.gpg_home, "GnuPG home (GNUPGHOME) holding the --gpg-recipient keys");
    app->add_option("--encrypt-method", a->method, "aes-256-gcm (default, built in), age or gpg (implied by --recipient / --gpg-recipient)")
        ->check(CLI::IsMember({"aes-256-gcm", "age", "gpg"}));
    app->add_option("--recipient", a->recipients, "age: encrypt to this public key, age1... (repeatable)")->allow_extra_args(false);
    app->add_option("--gpg-recipient", a->gpg_recipients, "gpg: encrypt to this key ID, fingerprint or user ID (repeatable)")->allow_extra_args(false);
    app->add_flag("--overwrite", a->overwrite, "Replace an existing output");
    add_output_flags(app, a->json, "the result");
    app->add_option("input", a->in, "The file to read")->required()->check(CLI::ExistingFile);
    app->add_option("output", a->out, "The file to write")->required();
    commands.push_back({app, [a]() {
                            std::string method = a->method;
                            if (method == "aes-256-gcm" && !a->recipients.empty()) method = "age";
                            if (method == "aes-256-gcm" && !a->gpg_recipients.empty()) method = "gpg";
                            json request{{"input", a->in}, {"output", a->out}, {"method", method}, {"overwrite", a->overwrite}};
                            if (!a->keys.passphrase_file.empty()) request["passphrase_file"] = a->keys.passphrase_file;
                            if (!a->keys.passphrase_env.empty()) request["passphrase_env"] = a->keys.passphrase_env;
                            if (!a->keys.key_file.empty()) request["key_file"] = a->keys.key_file;
                            if (!a->keys.gpg_home.empty()) request["gpg_home"] = a->keys.gpg_home;
                            if (!a->recipients.empty()) request["recipient"] = a->recipients;
                            if (!a->gpg_recipients.empty()) request["gpg_recipient"] = a->gpg_recipients;
                            RunOptions how;
                            how.json_errors = a->json;
                            json result;
                            if (int st = run_op("file.encrypt", request, result, how); st != exit_ok) return st;
                            if (a->json) fmt::print("{}\n", result.dump(2));
                            else fmt::print("{}: {} bytes ({}, {})\n", a->out, result["bytes"].get<std::uint64_t>(),
                                            result["method"].get<std::string>(), result["key"].get<std::string>());
                            return exit_ok;
                        }});
}

void register_decrypt(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand(
        "decrypt", "Decrypt a file (aes-256-gcm, age or OpenPGP, recognised from its header): every chunk authenticated before it is "
                   "written; nothing left on failure");
    struct Args {
        std::string in, out;
        KeyFlags keys;
        bool overwrite = false, json = false;
    };
    auto a = std::make_shared<Args>();
    add_key_flags(app, a->keys, "the input");
    app->add_flag("--overwrite", a->overwrite, "Replace an existing output");
    add_output_flags(app, a->json, "the result");
    app->add_option("input", a->in, "The file to read")->required()->check(CLI::ExistingFile);
    app->add_option("output", a->out, "The file to write")->required();
    commands.push_back({app, [a]() {
                            json request = a->keys.decrypt_request();
                            request.update(json{{"input", a->in}, {"output", a->out}, {"overwrite", a->overwrite}});
                            RunOptions how;
                            how.json_errors = a->json;
                            json result;
                            if (int st = run_op("file.decrypt", request, result, how); st != exit_ok) return st;
                            if (a->json) fmt::print("{}\n", result.dump(2));
                            else fmt::print("{}: {} bytes ({}, {})\n", a->out, result["bytes"].get<std::uint64_t>(),
                                            result["method"].get<std::string>(), result["key"].get<std::string>());
                            return exit_ok;
                        }});
}

void register_compress(CLI::App &root, std::vector<Command> &commands) {
    for (const bool compressing : {true, false}) {
        auto *app = compressing
                        ? root.add_subcommand("compress", "Compress a file as gzip, zstd or lz4 in independent units (parallel, seekable; "
                                                          "the stock tools decode it)")
                        : root.add_subcommand("decompress", "Decompress a gzip, zstd or lz4 file (recognised from its header); zero runs "
                                                            "stay holes");
        struct Args {
            std::string in, out, method;
            unsigned level = 0;
            bool overwrite = false, json = false;
        };
        auto a = std::make_shared<Args>();
        if (compressing) {
            app->add_option("-m,--method", a->method, "gzip, zstd or lz4")->required()->check(CLI::IsMember({"gzip", "zstd", "lz4"}));
            app->add_option("-l,--level", a->level, "gzip 1-9, zstd 1-19, lz4 1-12 (default: the method's)");
        }
        app->add_flag("--overwrite", a->overwrite, "Replace an existing output");
        add_output_flags(app, a->json, "the result");
        app->add_option("input", a->in, "The file to read")->required()->check(CLI::ExistingFile);
        app->add_option("output", a->out, "The file to write")->required();
        commands.push_back({app, [a, compressing]() {
                                json request{{"input", a->in}, {"output", a->out}, {"overwrite", a->overwrite}};
                                if (compressing) {
                                    request["method"] = a->method;
                                    if (a->level != 0) request["level"] = a->level;
                                }
                                RunOptions how;
                                how.json_errors = a->json;
                                json result;
                                if (int st = run_op(compressing ? "file.compress" : "file.decompress", request, result, how); st != exit_ok)
                                    return st;
                                if (a->json) fmt::print("{}\n", result.dump(2));
                                else fmt::print("{}: {} bytes ({})\n", a->out, result["bytes"].get<std::uint64_t>(), result["method"].get<std::string>());
                                return exit_ok;
                            }});
    }
}

}  // namespace

void register_crypt_commands(CLI::App &root, std::vector<Command> &commands) {
    register_encrypt(root, commands);
    register_decrypt(root, commands);
    register_compress(root, commands);
}

}  // namespace hsdk
