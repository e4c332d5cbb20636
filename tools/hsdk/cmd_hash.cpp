// hsdk sha256 FILE... : digests as `SHA256(name)= hex`, the line format of OVF manifests.
#include "commands.hpp"

#include <hypersdk/hash.hpp>

#include <fmt/format.h>

namespace hsdk {

void register_hash_commands(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("sha256", "Print SHA-256 digests of files in OVF manifest form");
    auto files = std::make_shared<std::vector<std::string>>();
    app->add_option("files", *files, "Files to digest")->required()->check(CLI::ExistingFile);
    commands.push_back({app, [files]() {
                            int status = exit_ok;
                            for (const auto &f : *files) {
                                auto hex = hypersdk::file_digest_hex(f, hypersdk::DigestAlgorithm::sha256);
                                if (!hex) {
                                    status = report(hex.error());
                                    continue;
                                }
                                fmt::print("SHA256({})= {}\n", f, hex.value());
                            }
                            return status;
                        }});
}

}  // namespace hsdk
