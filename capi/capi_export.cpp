// C ABI: vSphere discovery and VM export.
#include "capi_internal.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/vsphere.hpp>

#include <cstdlib>
#include <cstring>

namespace hypersdk::capi {
namespace {

char *dup_string(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p == nullptr) throw std::bad_alloc();
    std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

std::string str(const char *s) { return s ? std::string(s) : std::string(); }

Result<vsphere::ConnectionOptions> connection_from(const hsdk_vsphere_options *in) {
    const hsdk_vsphere_options o = read_struct<hsdk_vsphere_options>(in, HSDK_VSPHERE_OPTIONS_INIT);
    vsphere::ConnectionOptions c;
    c.url = str(o.url);
    c.username = str(o.username);
    c.password = str(o.password);
    c.insecure = o.insecure != 0;
    c.ca_file = str(o.ca_file);
    c.thumbprint = str(o.thumbprint);
    if (o.max_attempts > 0) c.max_attempts = o.max_attempts;
    c.cancel = token_of(o.cancel);
    return vsphere::with_environment(std::move(c));
}

}  // namespace
}  // namespace hypersdk::capi

using namespace hypersdk;

extern "C" {

HSDK_API hsdk_status hsdk_vsphere_list_vms_json(char **out_json, const hsdk_vsphere_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        HSDK_CHECK_ARG(options == nullptr || options->struct_size >= sizeof(size_t));
        auto conn = capi::connection_from(options);
        if (!conn) return capi::set_error(conn.error());
        auto vms = vsphere::list_vms(conn.value());
        if (!vms) return capi::set_error(vms.error());
        nlohmann::json j = nlohmann::json::array();
        for (const auto &vm : vms.value()) j.push_back(to_json(vm));
        *out_json = capi::dup_string(j.dump());
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_export(char **out_result_json, const hsdk_export_options *options) {
    return capi::guard([&]() -> hsdk_status {
        if (out_result_json != nullptr) *out_result_json = nullptr;
        HSDK_CHECK_ARG(options != nullptr && options->struct_size >= sizeof(size_t));
        const hsdk_export_options o = capi::read_struct<hsdk_export_options>(options, HSDK_EXPORT_OPTIONS_INIT);
        HSDK_CHECK_ARG(o.connection == nullptr || o.connection->struct_size >= sizeof(size_t));
        auto conn = capi::connection_from(o.connection);
        if (!conn) return capi::set_error(conn.error());
        ExportOptions eo;
        eo.connection = std::move(conn).value();
        eo.vm = capi::str(o.vm);
        eo.output_dir = capi::str(o.output_dir);
        if (o.format != nullptr) eo.format = o.format;
        eo.resume = o.resume != 0;
        eo.quiesce = o.quiesce != 0;
        eo.overwrite = o.overwrite != 0;
        eo.parallel = o.parallel == 0 ? 1 : o.parallel;
        const std::string transport = capi::str(o.transport);
        if (transport.empty() || transport == "auto") eo.transport = ExportTransport::automatic;
        else if (transport == "nfc") eo.transport = ExportTransport::nfc;
        else if (transport == "datastore") eo.transport = ExportTransport::datastore;
        else return capi::set_error(Errc::invalid_argument, "invalid argument: transport must be auto, nfc or datastore");
        // One token: the caller's (or a fresh one), shared by the connection and the export.
        eo.cancel = eo.connection.cancel;
        if (o.progress != nullptr) {
            auto fn = o.progress;
            void *ud = o.progress_user_data;
            eo.progress = [fn, ud](const ExportProgress &p) {
                hsdk_export_progress cp{sizeof(hsdk_export_progress), p.phase.c_str(), p.disk_index, p.disk_count,
                                        p.disk_bytes_done, p.disk_bytes_total, p.bytes_done, p.bytes_total,
                                        p.rate_bytes_per_sec, p.eta_seconds};
                return fn(&cp, ud) != 0 ? ProgressAction::cancel : ProgressAction::proceed;
            };
        }
        auto r = ExportSession(std::move(eo)).run();
        if (!r) return capi::set_error(r.error());
        if (out_result_json != nullptr) {
            const auto &res = r.value();
            nlohmann::json j = {{"vm", to_json(res.vm)},       {"files", res.files},
                                {"bytes_received", res.bytes_received}, {"bytes_resumed", res.bytes_resumed},
                                {"method", res.method},         {"snapshot_used", res.snapshot_used},
                                {"seconds", res.seconds}};
            *out_result_json = capi::dup_string(j.dump());
        }
        return HSDK_OK;
    });
}

}  // extern "C"
