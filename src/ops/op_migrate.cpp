// Warm migration: migrate.warm (every step, or one step at a time: precopy, cutover, status).
#include "ops/context.hpp"

#include <hypersdk/migrate.hpp>

#include <fmt/format.h>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

Result<json> migrate_warm(Context &c) {
    const auto &r = c.request();
    WarmMigrationOptions o;
    o.step = r.value("step", "run");
    o.output_dir = str(r, "out");
    if (o.step != "status") {
        HSDK_TRY(auto target, provider_target(c));
        o.provider = target.provider;
        o.provider_config = std::move(target.config);
        o.connection = std::move(target.connection);
    }
    o.vm = r.value("vm", "");
    o.format = r.value("format", "qcow2");
    o.downtime_budget = std::chrono::seconds(u64(r, "downtime_budget", 60));
    o.interval = std::chrono::seconds(u64(r, "interval", 0));
    o.max_rounds = static_cast<unsigned>(u64(r, "max_rounds", 10));
    o.shutdown_timeout = std::chrono::seconds(u64(r, "shutdown_timeout", 300));
    o.force_power_off = flag(r, "force_power_off");
    o.quiesce = flag(r, "quiesce");
    o.requests_in_flight = static_cast<unsigned>(u64(r, "requests_in_flight", 8));
    o.kvm = kvm_options(r);
    o.progress = export_progress(c);
    o.cancel = c.cancel();
    HSDK_TRY(auto res, run_warm_migration(std::move(o)));
    json disks = json::array(), rounds = json::array();
    for (const auto &d : res.disks)
        disks.push_back(json{{"disk_id", d.disk_id}, {"label", d.label}, {"file", d.file}, {"capacity", d.capacity}, {"change_id", d.change_id}});
    for (const auto &w : res.rounds) rounds.push_back(to_json(w));
    return json{{"phase", res.phase},
                {"state_file", res.state_file},
                {"vm", to_json(res.vm)},
                {"disks", disks},
                {"rounds", rounds},
                {"converged", res.converged},
                {"predicted_downtime_seconds", res.predicted_downtime_seconds},
                {"measured_downtime_seconds", res.measured_downtime_seconds ? json(*res.measured_downtime_seconds) : json(nullptr)},
                {"next_round_in_seconds", res.next_round_in_seconds},
                {"stopped", res.stopped},
                {"files", res.files}};
}

const HandlerEntry migrate_table[] = {
    {"migrate.warm", migrate_warm},
};

}  // namespace

std::span<const HandlerEntry> migrate_handlers() { return migrate_table; }

}  // namespace hypersdk::ops
