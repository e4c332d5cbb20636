// hsdk encrypt|decrypt IN OUT: a whole file into or out of hypersdk's aes-256-gcm envelope
// (file.encrypt, file.decrypt; docs/encryption.md). The key comes from a file or the environment,
// never from the command line.
#include "commands.hpp"

#include <fmt/format.h>

#include <memory>

namespace hsdk {

void register_crypt_commands(CLI::App &root, std::vector<Command> &commands) {
    for (const bool encrypting : {true, false}) {
        auto *app = encrypting ? root.add_subcommand("encrypt", "Encrypt a file (aes-256-gcm streaming envelope; the output appears only when complete)")
                               : root.add_subcommand("decrypt", "Decrypt a file: every chunk authenticated before it is written; nothing left on failure");
        struct Args {
            std::string in, out, method = "aes-256-gcm", passphrase_file, passphrase_env, key_file, identity;
            bool overwrite = false, json = false;
        };
        auto a = std::make_shared<Args>();
        auto *pf = app->add_option("--passphrase-file", a->passphrase_file, "The passphrase is the first line of FILE");
        auto *pe = app->add_option("--passphrase-env", a->passphrase_env, "The passphrase is the environment variable VAR");
        auto *kf = app->add_option("--key-file", a->key_file, "A file of 32 random bytes (mode 0600)");
        pf->excludes(pe)->excludes(kf);
        pe->excludes(kf);
        if (encrypting)
            app->add_option("--encrypt-method", a->method, "aes-256-gcm (built in); age and gpg are not implemented yet")
                ->check(CLI::IsMember({"aes-256-gcm", "age", "gpg"}));
        else
            app->add_option("--identity", a->identity, "An age identity file (age is not implemented yet)");
        app->add_flag("--overwrite", a->overwrite, "Replace an existing output");
        add_output_flags(app, a->json, "the result");
        app->add_option("input", a->in, "The file to read")->required()->check(CLI::ExistingFile);
        app->add_option("output", a->out, "The file to write")->required();
        commands.push_back({app, [a, encrypting]() {
                                if (!a->identity.empty())
                                    return report_message("unsupported: age decryption (--identity) is not implemented yet", exit_error);
                                json request{{"input", a->in}, {"output", a->out}, {"method", a->method}, {"overwrite", a->overwrite}};
                                if (!a->passphrase_file.empty()) request["passphrase_file"] = a->passphrase_file;
                                if (!a->passphrase_env.empty()) request["passphrase_env"] = a->passphrase_env;
                                if (!a->key_file.empty()) request["key_file"] = a->key_file;
                                RunOptions how;
                                how.json_errors = a->json;
                                json result;
                                if (int st = run_op(encrypting ? "file.encrypt" : "file.decrypt", request, result, how); st != exit_ok) return st;
                                if (a->json) fmt::print("{}\n", result.dump(2));
                                else fmt::print("{}: {} bytes ({}, {})\n", a->out, result["bytes"].get<std::uint64_t>(), result["method"].get<std::string>(),
                                                result["key"].get<std::string>());
                                return exit_ok;
                            }});
    }
}

}  // namespace hsdk
