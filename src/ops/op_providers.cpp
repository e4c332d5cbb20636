// Provider operations: providers.list, providers.load, vms.list, vms.describe and
// vms.snapshots.list|create|remove - any provider of the registry (built-in or plugin) through one request shape: {provider, config, ...}.
#include "ops/context.hpp"
#include "ops/registry.hpp"
#include "ops/schema.hpp"

#include <hypersdk/provider.hpp>

#include <fmt/format.h>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

// A provider's config schema with references to api/common.json spelled out, so that it stands
// alone for clients and for validation.
json standalone_schema(const Provider &p) {
    json s = inline_common_refs(p.config_schema(), common_definitions());
    s["$schema"] = "http://json-schema.org/draft-07/schema#";
    return s;
}

json describe_provider(const Provider &p) {
    return json{{"name", p.name()},
                {"description", p.description()},
                {"capabilities", capability_names(p.capabilities())},
                {"config_schema", standalone_schema(p)},
                {"origin", p.origin()}};
}

// The request's provider, connected with its config (validated against the provider's schema).
Result<std::unique_ptr<ProviderSession>> connect(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto provider, find_provider(r.value("provider", "vsphere")));
    const json config = r.value("config", json::object());
    HSDK_TRYV(validate_provider_config(r.value("provider", "vsphere"), config));
    return provider->connect(config, c.cancel());
}

Result<json> providers_list(Context &) {
    json out = json::array();
    for (const auto &p : providers()) out.push_back(describe_provider(*p));
    return json{{"providers", std::move(out)}};
}

Result<json> providers_load(Context &c) {
    HSDK_TRY(auto p, load_provider_plugin(str(c.request(), "path")));
    return json{{"provider", describe_provider(*p)}};
}

Result<json> vms_list(Context &c) {
    HSDK_TRY(auto session, connect(c));
    VmFilter filter;
    filter.name_contains = str(c.request(), "name_contains");
    HSDK_TRY(auto vms, session->list_vms(filter));
    json out = json::array();
    for (const auto &vm : vms) out.push_back(to_json(vm));
    return json{{"provider", c.request().value("provider", "vsphere")}, {"vms", std::move(out)}};
}

Result<json> vms_describe(Context &c) {
    HSDK_TRY(auto session, connect(c));
    HSDK_TRY(auto vm, session->describe(str(c.request(), "vm")));
    return json{{"provider", c.request().value("provider", "vsphere")}, {"vm", to_json(vm)}};
}

json provider_and_vm(Context &c) {
    return json{{"provider", c.request().value("provider", "vsphere")}, {"vm", str(c.request(), "vm")}};
}

Result<json> snapshots_list(Context &c) {
    HSDK_TRY(auto session, connect(c));
    HSDK_TRY(auto snapshots, session->list_snapshots(str(c.request(), "vm")));
    json out = provider_and_vm(c);
    out["snapshots"] = json::array();
    for (const auto &s : snapshots)
        out["snapshots"].push_back(json{{"id", s.id}, {"name", s.name}, {"created", s.created}, {"parent", s.parent}});
    return out;
}

Result<json> snapshots_create(Context &c) {
    HSDK_TRY(auto session, connect(c));
    HSDK_TRY(auto id, session->create_snapshot(str(c.request(), "vm"), str(c.request(), "name"), c.request().value("quiesce", false)));
    json out = provider_and_vm(c);
    out["snapshot"] = id;
    return out;
}

Result<json> snapshots_remove(Context &c) {
    HSDK_TRY(auto session, connect(c));
    HSDK_TRYV(session->remove_snapshot(str(c.request(), "vm"), str(c.request(), "snapshot")));
    json out = provider_and_vm(c);
    out["snapshot"] = str(c.request(), "snapshot");
    return out;
}

json tracking_json(Context &c, const TrackingStatus &st) {
    json disks = json::array();
    for (const auto &d : st.disks) disks.push_back(json{{"disk_id", d.disk_id}, {"label", d.label}, {"change_id", d.change_id}});
    json out = provider_and_vm(c);
    out["enabled"] = st.enabled;
    out["disks"] = std::move(disks);
    return out;
}

Result<json> cbt_status(Context &c) {
    HSDK_TRY(auto session, connect(c));
    HSDK_TRY(auto st, session->tracking_status(str(c.request(), "vm")));
    return tracking_json(c, st);
}

Result<json> cbt_enable(Context &c) {
    HSDK_TRY(auto session, connect(c));
    HSDK_TRY(auto st, session->enable_tracking(str(c.request(), "vm"), c.request().value("enabled", true)));
    return tracking_json(c, st);
}

const HandlerEntry providers_table[] = {
    {"providers.list", providers_list},
    {"providers.load", providers_load},
    {"vms.list", vms_list},
    {"vms.describe", vms_describe},
    {"vms.snapshots.list", snapshots_list},
    {"vms.snapshots.create", snapshots_create},
    {"vms.snapshots.remove", snapshots_remove},
    {"cbt.status", cbt_status},
    {"cbt.enable", cbt_enable},
};

}  // namespace

Result<void> validate_provider_config(const std::string &provider_name, const nlohmann::json &config) {
    HSDK_TRY(auto provider, find_provider(provider_name));
    HSDK_TRY(auto schema, Schema::compile(standalone_schema(*provider), provider->name() + " config"));
    return schema.validate(config, fmt::format("config of provider {}", provider->name()));
}

std::span<const HandlerEntry> provider_handlers() { return providers_table; }

}  // namespace hypersdk::ops
