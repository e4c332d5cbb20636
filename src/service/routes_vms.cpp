#include "service/routes.hpp"

#include <fmt/format.h>

#include <fnmatch.h>

namespace hypersdk::service::routes {
namespace {

std::string vms_text(const nlohmann::json &j, std::initializer_list<const char *> keys) {
    for (const char *k : keys)
        if (j.is_object() && j.contains(k) && j[k].is_string() && !j[k].get_ref<const std::string &>().empty()) return j[k].get<std::string>();
    return {};
}

// The body merged with the query string (GET forms of the routes).
Response vms_request(const Request &req, const RouteMatch &m, nlohmann::json &out) {
    const auto body = parse_body(req);
    if (!body.error.empty()) return error_response(400, body.error);
    out = body.value.is_object() ? body.value : nlohmann::json::object();
    for (const auto &[k, v] : m.target.query)
        if (!out.contains(k)) out[k] = v;
    return {};
}

bool vms_failed(const Response &r) { return r.status != 200 || !r.body.empty(); }

// Our VM model with the old daemon's field names beside it.
nlohmann::json shown_vm(const nlohmann::json &vm) {
    nlohmann::json s = vm;
    s["path"] = vm.value("inventory_path", vm.value("name", ""));
    s["num_cpu"] = vm.value("cpus", 0);
    s["memory_mb"] = vm.value("memory_mib", 0);
    s["guest_os"] = vm.value("guest_os_description", vm.value("guest_id", ""));
    std::uint64_t storage = 0;
    for (const auto &d : vm.value("disks", nlohmann::json::array())) storage += d.value("capacity_bytes", std::uint64_t{0});
    s["storage_bytes"] = storage;
    return s;
}

std::string vms_provider(const nlohmann::json &body) {
    const auto p = vms_text(body, {"provider"});
    return p.empty() ? "vsphere" : p;
}

// cbt.enable / cbt.status with the VM and connection of an old-daemon body {vm_path, vcenter?}.
Response cbt_call(ServiceImpl &s, const Request &req, const RouteMatch &m, const char *op, std::optional<bool> enabled) {
    nlohmann::json body;
    if (auto r = vms_request(req, m, body); vms_failed(r)) return r;
    const auto vm = vms_text(body, {"vm_path", "vm", "vm_identifier", "identifier"});
    if (vm.empty()) return error_response(400, "invalid request: vm_path is required");
    const auto provider = vms_provider(body);
    nlohmann::json request = {{"provider", provider}, {"config", provider_config(body, s.config(), provider)}, {"vm", vm}};
    if (enabled) request["enabled"] = *enabled;
    nlohmann::json result;
    if (auto err = run_sync(op, request, result)) return *err;
    result["vm_path"] = vm;
    result["timestamp"] = rfc3339(Clock::now());
    if (enabled) {
        result["success"] = true;
        result["message"] = fmt::format("changed block tracking {} for {}", *enabled ? "enabled" : "disabled", vm);
    } else {
        // The old client's CBT status: whether an incremental export can start from here.
        const bool on = result.value("enabled", false);
        bool ids = !result.value("disks", nlohmann::json::array()).empty();
        for (const auto &d : result.value("disks", nlohmann::json::array())) ids = ids && !d.value("change_id", "").empty();
        result["cbt_enabled"] = on;
        result["can_incremental"] = on && ids;
        if (!on) result["reason"] = "changed block tracking is off (POST /cbt/enable)";
        else if (!ids) result["reason"] = "no change ids yet: take a full backup first";
    }
    return json_response(200, result);
}

}  // namespace

Response vms_list(ServiceImpl &s, const Request &req, const RouteMatch &m) {
    nlohmann::json body;
    if (auto r = vms_request(req, m, body); vms_failed(r)) return r;
    const auto provider = vms_provider(body);
    nlohmann::json request = {{"provider", provider}, {"config", provider_config(body, s.config(), provider)}};
    nlohmann::json result;
    if (auto err = run_sync("vms.list", request, result)) return *err;
    const auto filter = body.value("filter", nlohmann::json::object());
    nlohmann::json vms = nlohmann::json::array();
    for (const auto &vm : result.value("vms", nlohmann::json::array())) {
        const std::string path = vm.value("inventory_path", "");
        if (const auto dc = vms_text(filter, {"datacenter"}); !dc.empty() && path.rfind("/" + dc + "/", 0) != 0) continue;
        if (const auto st = vms_text(filter, {"status", "power_state"}); !st.empty() && st != vm.value("power_state", "")) continue;
        if (const auto pat = vms_text(filter, {"name_pattern", "name"}); !pat.empty() && fnmatch(pat.c_str(), vm.value("name", "").c_str(), 0) != 0) continue;
        vms.push_back(shown_vm(vm));
    }
    // The old SDK clients take the answer as the list itself.
    return json_response(200, vms);
}

Response vms_info(ServiceImpl &s, const Request &req, const RouteMatch &m) {
    nlohmann::json body;
    if (auto r = vms_request(req, m, body); vms_failed(r)) return r;
    const auto vm = vms_text(body, {"vm_path", "identifier", "vm_identifier", "vm"});
    if (vm.empty()) return error_response(400, "invalid request: vm_path is required");
    const auto provider = vms_provider(body);
    nlohmann::json result;
    if (auto err = run_sync("vms.describe", {{"provider", provider}, {"config", provider_config(body, s.config(), provider)}, {"vm", vm}}, result)) return *err;
    return json_response(200, shown_vm(result.value("vm", nlohmann::json::object())));
}

Response cbt_enable(ServiceImpl &s, const Request &req, const RouteMatch &m) { return cbt_call(s, req, m, "cbt.enable", true); }
Response cbt_disable(ServiceImpl &s, const Request &req, const RouteMatch &m) { return cbt_call(s, req, m, "cbt.enable", false); }
Response cbt_status(ServiceImpl &s, const Request &req, const RouteMatch &m) { return cbt_call(s, req, m, "cbt.status", std::nullopt); }

// Whether the next backup of a VM can be incremental: CBT on, and a chain in the repository.
Response incremental_analyze(ServiceImpl &s, const Request &req, const RouteMatch &m) {
    nlohmann::json body;
    if (auto r = vms_request(req, m, body); vms_failed(r)) return r;
    const auto vm = vms_text(body, {"vm_path", "vm", "vm_identifier"});
    if (vm.empty()) return error_response(400, "invalid request: vm_path is required");
    const auto provider = vms_provider(body);
    nlohmann::json status;
    if (auto err = run_sync("cbt.status", {{"provider", provider}, {"config", provider_config(body, s.config(), provider)}, {"vm", vm}}, status)) return *err;
    const bool cbt = status.value("enabled", false);
    nlohmann::json out = {{"vm_path", vm}, {"cbt_enabled", cbt}, {"cbt", status}, {"timestamp", rfc3339(Clock::now())}};
    bool chain = false;
    if (const auto repo = vms_text(body, {"repo", "backup_repo"}); !repo.empty()) {
        nlohmann::json listed;
        if (auto err = run_sync("backup.list", {{"repo", repo}}, listed)) return *err;
        for (const auto &v : listed.value("vms", nlohmann::json::array()))
            if (v.value("vm", nlohmann::json::object()).value("inventory_path", "") == vm || v.value("name", "") == vm) {
                chain = !v.value("points", nlohmann::json::array()).empty();
                out["points"] = v.value("points", nlohmann::json::array());
            }
        out["repo"] = repo;
    }
    out["has_previous_backup"] = chain;
    out["can_incremental"] = cbt && chain;
    out["recommendation"] = !cbt ? "enable CBT (POST /cbt/enable), then take a full backup" : chain ? "incremental" : "full (no earlier backup in the repository)";
    return json_response(200, out);
}

// The seed workflow's POST /convert {source_path, output_path, conversion_options{format, compression}}:
// an OVF/OVA into KVM disks and a libvirt domain (kvm.import), as a job.
Response convert(ServiceImpl &s, const Request &req, const RouteMatch &m) {
    nlohmann::json body;
    if (auto r = vms_request(req, m, body); vms_failed(r)) return r;
    const auto from = vms_text(body, {"source_path", "from"});
    const auto out = vms_text(body, {"output_path", "out", "output_dir"});
    if (from.empty() || out.empty()) return error_response(400, "invalid request: source_path and output_path are required");
    const auto opts = body.value("conversion_options", nlohmann::json::object());
    nlohmann::json request = {{"from", from}, {"out", out}};
    if (const auto f = vms_text(opts, {"format"}); !f.empty()) request["disk_format"] = f;
    if (opts.value("compression", false)) request["compress"] = true;
    auto prepared = prepare_request("kvm.import", request);
    if (!prepared) return error_response(400, prepared.error().message);
    JobSubmission sub;
    sub.kind = "operation";
    sub.plan = {"kvm.import", prepared.value(), vms_text(body, {"name"}).empty() ? from : vms_text(body, {"name"}), from, "", nullptr};
    sub.definition_shown = redact_secrets(prepared.value());
    auto job = s.jobs().submit(std::move(sub));
    if (!job) return error_response(status_for(job.error().code), job.error().message);
    auto shown = s.jobs().shown(job.value());
    shown["job_id"] = job.value().id;
    return json_response(202, shown);
}

// POST /import-to-kvm {vm_name, disk_path, memory_mb, vcpus, network, autostart}: the libvirt domain
// XML for a converted disk (kvm.domain). Defining it in libvirt is left to virsh define.
Response import_to_kvm(ServiceImpl &, const Request &req, const RouteMatch &m) {
    nlohmann::json body;
    if (auto r = vms_request(req, m, body); vms_failed(r)) return r;
    const auto name = vms_text(body, {"vm_name", "name"});
    const auto disk = vms_text(body, {"disk_path"});
    if (name.empty() || disk.empty()) return error_response(400, "invalid request: vm_name and disk_path are required");
    nlohmann::json vm = {{"name", name},
                         {"cpus", body.value("vcpus", 1)},
                         {"memory_mib", body.value("memory_mb", 1024)},
                         {"disks", {{{"id", "disk-0"}, {"file", disk}, {"boot_order", 1}}}}};
    nlohmann::json request = {{"vm", vm}};
    if (const auto net = vms_text(body, {"network"}); !net.empty()) request["network"] = net;
    nlohmann::json result;
    if (auto err = run_sync("kvm.domain", request, result)) return *err;
    result["vm_name"] = name;
    result["domain_xml"] = result["xml"];
    result["defined"] = false;
    result["note"] = "the domain is not defined in libvirt by the daemon: run `virsh define` on the domain_xml";
    return json_response(200, result);
}

// GET /parse-vmdk?path=: what image.info says of a VMDK (or any image).
Response parse_vmdk(ServiceImpl &, const Request &, const RouteMatch &m) {
    const auto it = m.target.query.find("path");
    if (it == m.target.query.end() || it->second.empty()) return error_response(400, "invalid request: path is required");
    nlohmann::json result;
    if (auto err = run_sync("image.info", {{"path", it->second}}, result)) return *err;
    return json_response(200, result);
}

}  // namespace hypersdk::service::routes
