#include "service/routes.hpp"

#include <hypersdk/job.hpp>
#include <hypersdk/ops.hpp>
#include <hypersdk/version.hpp>

#include <fmt/format.h>

namespace hypersdk::service::routes {

int status_for(Errc code) {
    switch (code) {
        case Errc::invalid_argument: return 400;
        case Errc::not_found: return 404;
        case Errc::auth_failed: return 401;
        case Errc::permission_denied: return 403;
        case Errc::conflict: return 409;
        case Errc::unsupported: return 501;
        case Errc::timeout: return 504;
        case Errc::network_error:
        case Errc::tls_error:
        case Errc::remote_error: return 502;
        default: return 500;
    }
}

std::optional<Response> run_sync(const std::string &operation, const nlohmann::json &request, nlohmann::json &result) {
    auto r = run_operation(operation, request);
    if (!r) {
        auto msg = r.error().message;
        // The library says "invalid request of vms.list: ..."; the old daemon's clients look for
        // "invalid request" at the start.
        if (r.error().code == Errc::invalid_argument && msg.rfind("invalid request", 0) != 0) msg = "invalid request: " + msg;
        auto resp = error_response(status_for(r.error().code), msg);
        auto body = nlohmann::json::parse(resp.body);
        body["code"] = std::string(errc_name(r.error().code));
        resp.body = body.dump();
        return resp;
    }
    result = std::move(r).value();
    return std::nullopt;
}

Response health(ServiceImpl &s, const Request &, const RouteMatch &) {
    const auto st = s.status_json();
    return json_response(200, {{"status", "healthy"}, {"version", st["version"]}, {"uptime", st["uptime"]}, {"timestamp", st["timestamp"]}});
}

Response status(ServiceImpl &s, const Request &, const RouteMatch &) { return json_response(200, s.status_json()); }

Response capabilities(ServiceImpl &s, const Request &, const RouteMatch &) {
    nlohmann::json providers = nlohmann::json::array();
    nlohmann::json listed;
    if (!run_sync("providers.list", nlohmann::json::object(), listed))
        for (const auto &p : listed.value("providers", nlohmann::json::array())) providers.push_back(p.value("name", ""));
    nlohmann::json ops = nlohmann::json::array();
    for (const auto &o : operations()) ops.push_back(o.name);
    const auto cfg = s.config();
    return json_response(200, {{"version", std::string(hypersdk::version())},
                               {"providers", providers},
                               {"formats", {"ova", "ovf", "qcow2", "raw", "vmdk", "vhd", "vhdx", "vdi"}},
                               {"export_formats", {"ova", "ovf", "qcow2", "raw", "vmdk", "vhd", "vhdx", "vdi"}},
                               {"export_methods", {"ova", "ovf", "nfc", "datastore"}},
                               // The old SDK's shape: each method and whether it can be used.
                               {"capabilities",
                                {{"nfc", {{"available", true}, {"description", "vSphere NFC lease (ExportVm or snapshot + ExportSnapshot)"}}},
                                 {"datastore", {{"available", true}, {"description", "datastore file downloads with Range"}}},
                                 {"ova", {{"available", true}, {"description", "an OVA package"}}},
                                 {"ovf", {{"available", true}, {"description", "an OVF folder"}}}}},
                               {"default_method", "nfc"},
                               {"operations", ops},
                               {"features",
                                {{"cbt", true},
                                 {"incremental_backup", true},
                                 {"schedules", true},
                                 {"webhooks", true},
                                 {"websocket", true},
                                 {"metrics", true},
                                 {"hyper2kvm", true},
                                 {"cost_estimation", true},
                                 {"auth", cfg.auth_required}}},
                               {"max_concurrent_jobs", cfg.workers},
                               {"timestamp", rfc3339(Clock::now())}});
}

Response openapi(ServiceImpl &, const Request &, const RouteMatch &) {
    Response r;
    r.body = std::string(openapi_json());
    return r;
}

Response metrics(ServiceImpl &s, const Request &, const RouteMatch &) {
    return text_response(200, s.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
}

Response login(ServiceImpl &s, const Request &req, const RouteMatch &) {
    const auto body = parse_body(req);
    if (!body.error.empty()) return error_response(400, body.error);
    if (!body.value.is_object() || !body.value.contains("username") || !body.value.contains("password") || !body.value["username"].is_string() ||
        !body.value["password"].is_string())
        return error_response(400, "invalid request: username and password are required");
    return s.auth().login(body.value["username"], body.value["password"]);
}

Response logout(ServiceImpl &s, const Request &req, const RouteMatch &) {
    s.auth().logout(req);
    return json_response(200, {{"status", "logged out"}, {"timestamp", rfc3339(Clock::now())}});
}

// Who the caller is: the dashboard asks before it shows a login form.
Response whoami(ServiceImpl &s, const Request &req, const RouteMatch &) {
    Principal who;
    if (auto denied = s.auth().check(req, Role::read, who)) return *denied;
    return json_response(200, {{"principal", who.name}, {"role", role_name(who.role)}, {"auth_required", s.config().auth_required}});
}

// The old SDK's cost request {provider, region, storage_class ("s3_standard"), storage_gb,
// duration_days, requests, transfer_gb} in cost.estimate's words; our own keys pass as they are.
std::optional<Response> cost_request(const Request &req, bool compare, nlohmann::json &out) {
    const auto body = parse_body(req);
    if (!body.error.empty()) return error_response(400, body.error);
    if (!body.value.is_object()) return error_response(400, "invalid request: expected a JSON object");
    out = body.value;
    if (out.contains("storage_gb")) {
        if (!out["storage_gb"].is_number() || out["storage_gb"].get<double>() < 0) return error_response(400, "invalid request: storage_gb must be a number >= 0");
        out["stored_bytes"] = static_cast<std::uint64_t>(out["storage_gb"].get<double>() * static_cast<double>(1ull << 30));
        out.erase("storage_gb");
    }
    if (out.contains("duration_days")) {
        out["days"] = out["duration_days"];
        out.erase("duration_days");
    }
    if (out.contains("requests")) {
        if (out["requests"].is_number_unsigned() && out["requests"].get<std::uint64_t>() > 0) out["objects"] = out["requests"];
        out.erase("requests");
    }
    if (out.contains("transfer_gb")) {
        // Egress here comes from restores (everything read back); a free-standing transfer volume
        // is not in the model, and guessing one would misstate the bill.
        if (out["transfer_gb"].is_number() && out["transfer_gb"].get<double>() != 0)
            return error_response(400, "invalid request: transfer_gb is not modelled; give restores (full read-backs) instead");
        out.erase("transfer_gb");
    }
    if (out.contains("storage_class") && out["storage_class"].is_string()) {
        // "s3_standard", "azure_cool": the provider prefix of the old names.
        std::string c = out["storage_class"];
        for (const char *p : {"s3_", "azure_", "gcs_", "gcp_"})
            if (c.rfind(p, 0) == 0) c = c.substr(std::string_view(p).size());
        for (auto &ch : c) ch = ch == '_' ? '-' : ch;
        out["storage_class"] = c;
    }
    if (compare) {
        out.erase("provider");
        out.erase("storage_class");
        out.erase("region");
    }
    return std::nullopt;
}

Response cost_estimate(ServiceImpl &, const Request &req, const RouteMatch &) {
    nlohmann::json request, result;
    if (auto err = cost_request(req, false, request)) return *err;
    if (auto err = run_sync("cost.estimate", request, result)) return *err;
    return json_response(200, result);
}

Response cost_compare(ServiceImpl &, const Request &req, const RouteMatch &) {
    nlohmann::json request, result;
    if (auto err = cost_request(req, true, request)) return *err;
    if (auto err = run_sync("cost.compare", request, result)) return *err;
    return json_response(200, result);
}

// Any operation of the registry, run as a job of the board (so it is listed, persisted, cancellable).
Response v1_op(ServiceImpl &s, const Request &req, const RouteMatch &m) {
    const auto &op = m.params.at("operation");
    if (!find_operation(op)) return error_response(404, "unknown operation: " + op);
    const auto body = parse_body(req);
    if (!body.error.empty()) return error_response(400, body.error);
    nlohmann::json request = body.value;
    // An operation that connects to a provider and names no connection gets the daemon's
    // configured one (providers.<name>, GOVC_* for vSphere), as /jobs/submit does.
    const auto &props = find_operation(op)->request_schema.value("properties", nlohmann::json::object());
    if (request.is_object() && props.contains("config") && !request.contains("config") && !request.contains("connection")) {
        const std::string provider = request.value("provider", "vsphere");
        request["config"] = provider_config(nlohmann::json::object(), s.config(), provider);
    }
    auto prepared = prepare_request(op, request);
    if (!prepared) return error_response(400, prepared.error().message);
    JobSubmission sub;
    sub.kind = "operation";
    sub.plan.operation = op;
    sub.plan.request = prepared.value();
    sub.plan.name = req.headers.count("x-job-name") ? req.headers.at("x-job-name") : op;
    sub.plan.vm_path = body.value.is_object() ? body.value.value("vm", "") : "";
    sub.definition_shown = redact_secrets(redact_request(op, prepared.value()));
    auto job = s.jobs().submit(std::move(sub));
    if (!job) return error_response(status_for(job.error().code), job.error().message);
    const auto &q = m.target.query;
    if (q.count("wait") && (q.at("wait") == "true" || q.at("wait") == "1")) {
        s.jobs().wait(job.value().id, std::chrono::hours(24));
        auto done = s.jobs().get(job.value().id);
        return json_response(200, s.jobs().shown(*done));
    }
    return json_response(202, s.jobs().shown(job.value()));
}

}  // namespace hypersdk::service::routes
