// hsdk sha256 FILE... : digests as `SHA256(name)= hex`, the line format of OVF manifests (file.sha256).
#include "commands.hpp"

#include <fmt/format.h>

namespace hsdk {

void register_hash_commands(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("sha256", "Print SHA-256 digests of files in OVF manifest form");
    auto files = std::make_shared<std::vector<std::string>>();
    app->add_option("files", *files, "Files to digest")->required()->check(CLI::ExistingFile);
    commands.push_back({app, [files]() {
                            int status = exit_ok;
                            for (const auto &f : *files) {
                                nlohmann::json r;
                                if (int s = run_op("file.sha256", {{"path", f}}, r); s != exit_ok) {
                                    status = s;
                                    continue;
                                }
                                fmt::print("SHA256({})= {}\n", f, r["sha256"].get<std::string>());
                            }
                            return status;
                        }});
}

}  // namespace hsdk
