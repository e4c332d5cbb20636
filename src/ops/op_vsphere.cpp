// vSphere operations: vsphere.vms.list and export.run.
#include "ops/context.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/vsphere.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

// The connection of a request; the password comes from the request, a variable or a file, and
// whatever is left out from the GOVC_* variables.
Result<vsphere::ConnectionOptions> connection(Context &c) {
    const json conn = c.request().value("connection", json::object());
    vsphere::ConnectionOptions o;
    o.url = str(conn, "url");
    o.username = str(conn, "username");
    o.insecure = flag(conn, "insecure");
    o.ca_file = str(conn, "ca_file");
    o.thumbprint = str(conn, "thumbprint");
    o.max_attempts = static_cast<unsigned>(u64(conn, "max_attempts", 5));
    if (auto p = opt_str(conn, "password")) {
        o.password = *p;
    } else if (auto env = opt_str(conn, "password_env")) {
        const char *v = std::getenv(env->c_str());
        if (v == nullptr) return fail(Errc::invalid_argument, fmt::format("/connection/password_env: ${} is not set", *env));
        o.password = v;
    } else if (auto file = opt_str(conn, "password_file")) {
        std::ifstream in(*file);
        if (!in) return fail(Errc::not_found, fmt::format("/connection/password_file: cannot read '{}'", *file));
        std::getline(in, o.password);  // the first line; its newline is not part of the password
        if (!o.password.empty() && o.password.back() == '\r') o.password.pop_back();
    }
    o.cancel = c.cancel();
    return vsphere::with_environment(std::move(o));
}

Result<json> vms_list(Context &c) {
    HSDK_TRY(auto conn, connection(c));
    HSDK_TRY(auto vms, vsphere::list_vms(conn));
    json out = json::array();
    for (const auto &vm : vms) out.push_back(to_json(vm));
    return json{{"vms", std::move(out)}};
}

Result<json> export_run(Context &c) {
    const auto &r = c.request();
    ExportOptions o;
    HSDK_TRY(o.connection, connection(c));
    o.vm = str(r, "vm");
    o.output_dir = str(r, "output_dir");
    o.format = str(r, "format");
    HSDK_TRY(o.format_options, format_options(r, "options"));
    o.compress = flag(r, "compress");
    o.threads = static_cast<unsigned>(u64(r, "threads"));
    o.resume = flag(r, "resume");
    o.quiesce = flag(r, "quiesce");
    o.parallel = static_cast<unsigned>(u64(r, "parallel", 1));
    o.overwrite = flag(r, "overwrite");
    const std::string transport = str(r, "transport");
    o.transport = transport == "nfc"         ? ExportTransport::nfc
                  : transport == "datastore" ? ExportTransport::datastore
                                             : ExportTransport::automatic;
    o.cancel = c.cancel();
    // Export progress in the one progress type: disks are the items.
    o.progress = [job = c.progress()](const ExportProgress &p) {
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
    HSDK_TRY(auto res, ExportSession(std::move(o)).run());
    return json{{"vm", to_json(res.vm)},
                {"files", res.files},
                {"bytes_received", res.bytes_received},
                {"bytes_resumed", res.bytes_resumed},
                {"method", res.method},
                {"snapshot_used", res.snapshot_used},
                {"seconds", res.seconds}};
}

const HandlerEntry table[] = {
    {"vsphere.vms.list", vms_list},
    {"export.run", export_run},
};

}  // namespace

std::span<const HandlerEntry> vsphere_handlers() { return table; }

}  // namespace hypersdk::ops
