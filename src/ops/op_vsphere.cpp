// vsphere.vms.list, and export.run (vSphere's NFC/datastore session, or any provider with block reads).
#include "ops/context.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/vsphere.hpp>

#include <fmt/format.h>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

// The connection of a request (with "config" merged over it, the shape every provider takes);
// what it leaves out comes from the GOVC_* variables.
Result<vsphere::ConnectionOptions> connection(Context &c) {
    json conn = c.request().value("connection", json::object());
    conn.update(c.request().value("config", json::object()));
    return vsphere::connection_from_json(conn, c.cancel());
}

Result<json> vsphere_vms_list(Context &c) {
    HSDK_TRY(auto conn, connection(c));
    HSDK_TRY(auto vms, vsphere::list_vms(conn));
    json out = json::array();
    for (const auto &vm : vms) out.push_back(to_json(vm));
    return json{{"vms", std::move(out)}};
}

Result<json> export_run(Context &c) {
    const auto &r = c.request();
    ExportOptions o;
    HSDK_TRY(auto target, provider_target(c));
    o.provider = target.provider;
    o.provider_config = std::move(target.config);
    o.connection = std::move(target.connection);
    o.space_check = !flag(r, "no_space_check");
    o.vm = str(r, "vm");
    o.output_dir = str(r, "output_dir");
    o.format = str(r, "format");
    HSDK_TRY(o.format_options, format_options(r, "options"));
    o.compress = native_compress(r);
    o.compression = stream_compression(r);
    o.encryption = encryption_options(r);
    o.threads = static_cast<unsigned>(u64(r, "threads"));
    o.resume = flag(r, "resume");
    o.quiesce = flag(r, "quiesce");
    o.parallel = static_cast<unsigned>(u64(r, "parallel", 1));
    o.overwrite = flag(r, "overwrite");
    o.hyper2kvm_manifest = flag(r, "hyper2kvm_manifest");
    const std::string transport = str(r, "transport");
    o.transport = transport == "nfc"         ? ExportTransport::nfc
                  : transport == "datastore" ? ExportTransport::datastore
                                             : ExportTransport::automatic;
    o.method = str(r, "method");
    o.cancel = c.cancel();
    o.progress = export_progress(c);
    HSDK_TRY(auto res, ExportSession(std::move(o)).run());
    json out{{"vm", to_json(res.vm)},
             {"files", res.files},
             {"bytes_received", res.bytes_received},
             {"bytes_resumed", res.bytes_resumed},
             {"method", res.method},
             {"snapshot_used", res.snapshot_used},
             {"seconds", res.seconds}};
    if (res.encryption) out["encryption"] = to_json(*res.encryption);
    if (!res.compression.empty()) out["compression"] = res.compression;
    return out;
}

const HandlerEntry vsphere_table[] = {
    {"vsphere.vms.list", vsphere_vms_list},
    {"export.run", export_run},
};

}  // namespace

Result<ProviderTarget> provider_target(Context &c) {
    const auto &r = c.request();
    ProviderTarget t;
    t.provider = r.value("provider", "vsphere");
    if (t.provider == "vsphere") {
        HSDK_TRY(t.connection, connection(c));
    } else {
        t.config = r.value("config", json::object());
        HSDK_TRYV(validate_provider_config(t.provider, t.config));
    }
    return t;
}

ExportProgressCallback export_progress(Context &c) {
    return [job = c.progress()](const ExportProgress &p) {
        ProgressInfo info;
        info.phase = p.phase;
        info.bytes_done = p.bytes_done;
        info.bytes_total = p.bytes_total;
        info.rate_bytes_per_sec = p.rate_bytes_per_sec;
        info.eta_seconds = p.eta_seconds;
        info.items_done = p.disks_done;
        info.items_total = p.disk_count;
        info.item_index = p.disk_index;
        if (p.disk_index) info.current_item = fmt::format("disk {} of {}", p.disk_index, p.disk_count);
        info.item_bytes_done = p.disk_bytes_done;
        info.item_bytes_total = p.disk_bytes_total;
        return job(info);
    };
}

std::span<const HandlerEntry> vsphere_handlers() { return vsphere_table; }

}  // namespace hypersdk::ops
