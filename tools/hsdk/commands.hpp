// The list of subcommands; each lives in its own cmd_*.cpp.
#pragma once

#include "cli_support.hpp"

#include <vector>

namespace hsdk {

void register_hash_commands(CLI::App &root, std::vector<Command> &commands);
void register_image_commands(CLI::App &root, std::vector<Command> &commands);
void register_vsphere_commands(CLI::App &root, std::vector<Command> &commands);
void register_kvm_commands(CLI::App &root, std::vector<Command> &commands);
void register_ops_commands(CLI::App &root, std::vector<Command> &commands);
void register_backup_commands(CLI::App &root, std::vector<Command> &commands);
void register_cost_commands(CLI::App &root, std::vector<Command> &commands);
void register_crypt_commands(CLI::App &root, std::vector<Command> &commands);
void register_migrate_commands(CLI::App &root, std::vector<Command> &commands);

inline std::vector<CommandRegistrar> all_commands() {
    return {
        &register_image_commands,
        &register_kvm_commands,
        &register_hash_commands,
        &register_vsphere_commands,
        &register_backup_commands,
        &register_migrate_commands,
        &register_cost_commands,
        &register_crypt_commands,
        &register_ops_commands,
    };
}

}  // namespace hsdk
