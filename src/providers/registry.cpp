// The provider registry: built-in providers first, then plugins (HSDK_PLUGIN_PATH on first use, or
// loaded explicitly), each name once.
#include <hypersdk/log.hpp>
#include <hypersdk/provider.hpp>

#include "providers/builtin.hpp"

#include <fmt/format.h>

#include <mutex>

namespace hypersdk {
namespace {

struct Registry {
    std::mutex mutex;
    std::vector<std::shared_ptr<const Provider>> list;
    Registry() {
        list.push_back(vsphere::vsphere_provider());
        list.push_back(aws::aws_provider());
        list.push_back(azure::azure_provider());
        list.push_back(gcp::gcp_provider());
        list.push_back(openstack::openstack_provider());
    }
};

Registry &registry() {
    static Registry r;
    return r;
}

}  // namespace

std::vector<std::string> capability_names(std::uint32_t capabilities) {
    static const std::pair<ProviderCapability, const char *> names[] = {
        {ProviderCapability::list, "list"},
        {ProviderCapability::describe, "describe"},
        {ProviderCapability::snapshot, "snapshot"},
        {ProviderCapability::native_export, "native_export"},
        {ProviderCapability::block_reads, "block_reads"},
        {ProviderCapability::changed_extents, "changed_extents"},
        {ProviderCapability::power, "power"},
    };
    std::vector<std::string> out;
    for (const auto &[bit, name] : names)
        if ((capabilities & static_cast<std::uint32_t>(bit)) != 0) out.emplace_back(name);
    return out;
}

Result<void> register_provider(std::shared_ptr<const Provider> provider) {
    if (!provider) return fail(Errc::invalid_argument, "no provider to register");
    auto &r = registry();
    std::lock_guard lock(r.mutex);
    for (const auto &p : r.list)
        if (p->name() == provider->name())
            return fail(Errc::conflict, fmt::format("a provider named '{}' is registered already ({})", p->name(), p->origin()));
    r.list.push_back(std::move(provider));
    return success();
}

std::vector<std::shared_ptr<const Provider>> providers() {
    load_plugins_from_environment();
    auto &r = registry();
    std::lock_guard lock(r.mutex);
    return r.list;
}

Result<std::shared_ptr<const Provider>> find_provider(std::string_view name) {
    std::string known;
    for (const auto &p : providers()) {
        if (p->name() == name) return p;
        known += (known.empty() ? "" : ", ") + p->name();
    }
    return fail(Errc::not_found, fmt::format("no provider named '{}' (known: {}; plugins load from HSDK_PLUGIN_PATH)", name, known));
}

}  // namespace hypersdk
