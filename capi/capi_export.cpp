// C ABI: vSphere discovery and VM export, as thin wrappers over vsphere.vms.list and export.run.
#include "capi_internal.hpp"

#include <hypersdk/progress.hpp>

namespace hypersdk::capi {
namespace {

// The connection struct as the request's "connection" object; what it leaves NULL comes from
// the GOVC_* variables when the operation runs.
Result<nlohmann::json> connection_from(const hsdk_vsphere_options *in) {
    HSDK_TRY(const hsdk_vsphere_options o, read_struct<hsdk_vsphere_options>(in, HSDK_VSPHERE_OPTIONS_INIT, "hsdk_vsphere_options"));
    nlohmann::json c = nlohmann::json::object();
    if (o.url) c["url"] = o.url;
    if (o.username) c["username"] = o.username;
    if (o.password) c["password"] = o.password;
    if (o.insecure) c["insecure"] = true;
    if (o.ca_file) c["ca_file"] = o.ca_file;
    if (o.thumbprint) c["thumbprint"] = o.thumbprint;
    if (o.max_attempts > 0) c["max_attempts"] = o.max_attempts;
    return c;
}

const hsdk_cancel *cancel_of(const hsdk_vsphere_options *in) {
    return in != nullptr && in->struct_size >= offsetof(hsdk_vsphere_options, cancel) + sizeof(hsdk_cancel *) ? in->cancel : nullptr;
}

}  // namespace
}  // namespace hypersdk::capi

using namespace hypersdk;

extern "C" {

HSDK_API hsdk_status hsdk_vsphere_list_vms_json(char **out_json, const hsdk_vsphere_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        auto conn = capi::connection_from(options);
        if (!conn) return capi::set_error(conn.error());
        auto r = capi::run_typed("vsphere.vms.list", {{"connection", conn.value()}}, capi::cancel_of(options), nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        *out_json = capi::copy_out(capi::dump(r.value().at("vms")));
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_export(char **out_result_json, const hsdk_export_options *options) {
    return capi::guard([&]() -> hsdk_status {
        if (out_result_json != nullptr) *out_result_json = nullptr;
        HSDK_CHECK_ARG(options != nullptr);
        HSDK_READ_STRUCT(o, hsdk_export_options, options, HSDK_EXPORT_OPTIONS_INIT);
        auto conn = capi::connection_from(o.connection);
        if (!conn) return capi::set_error(conn.error());
        const std::string transport = capi::str(o.transport);
        nlohmann::json request{{"connection", conn.value()},
                               {"vm", capi::str(o.vm)},
                               {"output_dir", capi::str(o.output_dir)},
                               {"format", o.format ? o.format : "ova"},
                               {"resume", o.resume != 0},
                               {"quiesce", o.quiesce != 0},
                               {"parallel", o.parallel == 0 ? 1u : o.parallel},
                               {"overwrite", o.overwrite != 0},
                               {"transport", transport.empty() ? std::string("auto") : transport}};
        // The export's own progress type, filled from the one progress event (disks are its items).
        hsdk_progress_fn bridge = nullptr;
        struct Legacy {
            hsdk_export_progress_fn fn;
            void *user_data;
        } legacy{o.progress, o.progress_user_data};
        if (o.progress != nullptr)
            bridge = [](const hsdk_progress *p, void *ud) -> int {
                const auto *l = static_cast<const Legacy *>(ud);
                hsdk_export_progress e{sizeof(hsdk_export_progress), p->phase, static_cast<unsigned>(p->item_index),
                                       static_cast<unsigned>(p->items_total), p->item_bytes_done, p->item_bytes_total,
                                       p->bytes_done, p->bytes_total, p->rate_bytes_per_sec, p->eta_seconds};
                return l->fn(&e, l->user_data);
            };
        auto r = capi::run_typed("export.run", request, capi::cancel_of(o.connection), bridge, &legacy);
        if (!r) return capi::set_error(r.error());
        if (out_result_json != nullptr) *out_result_json = capi::copy_out(capi::dump(r.value()));
        return HSDK_OK;
    });
}

}  // extern "C"
