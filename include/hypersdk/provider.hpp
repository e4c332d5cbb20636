// Providers: the platforms VMs are moved off (vSphere, clouds, plugins loaded at run time), in one
// registry like the format drivers'. A provider connects a Session from a JSON config; a session
// lists and describes VMs and, for providers that can read disks block by block, opens each disk
// of a VM as a ByteSource that every image operation can read.
#pragma once

#include <hypersdk/byte_source.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/vm.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk {

// What a provider can do; names as providers.list reports them.
enum class ProviderCapability : std::uint32_t {
    list = 1u << 0,             // list VMs
    describe = 1u << 1,         // describe one VM (hardware, disks, NICs)
    snapshot = 1u << 2,         // snapshots for consistent exports of running VMs
    native_export = 1u << 3,    // the platform's own export (vSphere NFC lease, cloud export tasks)
    block_reads = 1u << 4,      // disks readable at any offset (open_disk)
    changed_extents = 1u << 5,  // changed-block queries for incremental backups
    power = 1u << 6,            // power operations
};
std::vector<std::string> capability_names(std::uint32_t capabilities);

struct VmFilter {
    std::string name_contains;  // case-sensitive substring of name or inventory path; empty: all
};

class ProviderSession {
public:
    virtual ~ProviderSession() = default;
    virtual Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) = 0;
    // not_found when no VM has that name, path or id.
    virtual Result<VirtualMachine> describe(const std::string &vm) = 0;
    // Disk `index` (0-based, in describe()'s order) as bytes in the format describe() gives as the
    // disk's file_format (raw when empty). unsupported unless the provider has block_reads.
    virtual Result<std::shared_ptr<ByteSource>> open_disk(const std::string &vm, std::size_t index);
};

class Provider {
public:
    virtual ~Provider() = default;
    [[nodiscard]] virtual std::string name() const = 0;
    [[nodiscard]] virtual std::string description() const = 0;
    [[nodiscard]] virtual std::uint32_t capabilities() const = 0;  // ProviderCapability bits
    // JSON Schema (draft 7) of the config connect() takes.
    [[nodiscard]] virtual nlohmann::json config_schema() const = 0;
    // Where it comes from: "built-in", or the plugin's file.
    [[nodiscard]] virtual std::string origin() const { return "built-in"; }
    // Opens a session. What the config leaves out comes from the platform's usual environment
    // variables and files. Wrong credentials are auth_failed.
    virtual Result<std::unique_ptr<ProviderSession>> connect(const nlohmann::json &config, const CancelToken &cancel) const = 0;
};

// Adds a provider; conflict when one of that name is registered already.
Result<void> register_provider(std::shared_ptr<const Provider> provider);
// Every provider: the built-in ones, then plugins (those of HSDK_PLUGIN_PATH are loaded on the
// first call), by name.
std::vector<std::shared_ptr<const Provider>> providers();
// not_found naming the known providers when there is none of that name.
Result<std::shared_ptr<const Provider>> find_provider(std::string_view name);

// Loads a provider plugin: a shared object exporting `hsdk_plugin_init` (see <hypersdk_plugin.h>),
// and registers it. Refuses ABI versions it does not know and names it does not accept.
Result<std::shared_ptr<const Provider>> load_provider_plugin(const std::string &path);
// HSDK_PLUGIN_PATH: colon-separated shared objects or folders (every *.so inside). Loaded once;
// a plugin that fails to load is reported through the log and skipped.
void load_plugins_from_environment();

}  // namespace hypersdk
