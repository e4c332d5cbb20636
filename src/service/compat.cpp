#include "service/compat.hpp"

#include "service/util.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>

namespace hypersdk::service {
namespace {

const nlohmann::json &compat_field(const nlohmann::json &j, const char *key) {
    static const nlohmann::json none;
    return j.is_object() && j.contains(key) ? j[key] : none;
}

std::string compat_text(const nlohmann::json &j, std::initializer_list<const char *> keys) {
    for (const char *k : keys) {
        const auto &v = compat_field(j, k);
        if (v.is_string() && !v.get_ref<const std::string &>().empty()) return v.get<std::string>();
    }
    return {};
}

bool compat_flag(const nlohmann::json &j, const char *key, bool otherwise = false) {
    const auto &v = compat_field(j, key);
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_string()) return v == "true" || v == "1" || v == "yes";
    return otherwise;
}

constexpr std::array<const char *, 8> export_formats{"ova", "ovf", "qcow2", "raw", "vmdk", "vhd", "vhdx", "vdi"};

bool is_export_format(const std::string &f) { return std::find(export_formats.begin(), export_formats.end(), f) != export_formats.end(); }

// host of "https://user@host:443/sdk", or the bare host.
std::string host_of(const std::string &url) {
    std::string s = url;
    if (auto p = s.find("://"); p != std::string::npos) s = s.substr(p + 3);
    if (auto p = s.find('/'); p != std::string::npos) s = s.substr(0, p);
    if (auto p = s.rfind('@'); p != std::string::npos) s = s.substr(p + 1);
    return s;
}

}  // namespace

nlohmann::json vsphere_connection(const nlohmann::json &d, const Config &config) {
    nlohmann::json conn = nlohmann::json::object();
    const auto &configured = compat_field(config.providers, "vsphere");
    auto take = [&](const nlohmann::json &src) {
        if (!src.is_object()) return;
        const std::string url = compat_text(src, {"url", "server", "host", "vcenter_url"});
        if (!url.empty()) conn["url"] = url;
        for (const char *k : {"username", "password", "password_env", "password_file", "ca_file", "thumbprint"})
            if (compat_field(src, k).is_string()) conn[k] = src[k];
        if (compat_field(src, "user").is_string()) conn["username"] = src["user"];
        if (compat_field(src, "insecure").is_boolean()) conn["insecure"] = src["insecure"];
        if (compat_field(src, "max_attempts").is_number_unsigned()) conn["max_attempts"] = src["max_attempts"];
    };
    take(configured);
    const auto &vc = compat_field(d, "vcenter");
    nlohmann::json top = nlohmann::json::object();
    for (const char *k : {"vcenter_url", "server", "username", "password", "insecure"})
        if (d.contains(k)) top[k] = d[k];
    if (vc.is_object() || !top.empty()) {
        // The job names its own vCenter: the configured credentials are not for it.
        if (compat_text(vc, {"server", "url", "host"}) != "" || top.contains("vcenter_url") || top.contains("server")) conn = nlohmann::json::object();
        take(top);
        take(vc);
    }
    return conn;
}

nlohmann::json provider_config(const nlohmann::json &d, const Config &config, const std::string &provider) {
    if (provider == "vsphere") return vsphere_connection(d, config);
    nlohmann::json cfg = compat_field(config.providers, provider.c_str()).is_object() ? config.providers[provider] : nlohmann::json::object();
    if (compat_field(d, "config").is_object())
        for (const auto &[k, v] : d["config"].items()) cfg[k] = v;
    cfg.erase("enabled");
    return cfg;
}


std::string_view compat_state(std::string_view s) noexcept {
    if (s == "queued") return "pending";
    if (s == "succeeded") return "completed";
    return s;
}

Result<JobPlan> plan_submitted_job(const nlohmann::json &d, const Config &config) {
    if (!d.is_object()) return fail(Errc::invalid_argument, "invalid request: a job definition must be a JSON object");
    JobPlan plan;
    plan.vm_path = compat_text(d, {"vm_path", "vm_identifier", "vm"});
    if (plan.vm_path.empty()) return fail(Errc::invalid_argument, "invalid request: vm_path is required");
    const auto &ex = config.export_defaults;
    const auto &options = compat_field(d, "options");

    std::string out = compat_text(d, {"output_dir", "output_path", "export_path"});
    std::string vm_leaf = plan.vm_path.substr(plan.vm_path.find_last_of('/') + 1);
    plan.name = compat_text(d, {"name"});
    if (plan.name.empty()) plan.name = vm_leaf;
    if (out.empty()) {
        const std::string base = compat_text(ex, {"base_path", "output_dir"});
        if (base.empty()) return fail(Errc::invalid_argument, "invalid request: output_dir is required (or set export.base_path in the config)");
        out = (std::filesystem::path(base) / (plan.name.empty() ? std::string("export") : plan.name)).string();
    }
    std::string format = compat_text(d, {"format"});
    const std::string method = compat_text(d, {"export_method", "method"});
    if (format.empty() && is_export_format(method)) format = method;
    if (format.empty()) format = compat_text(ex, {"format"});
    if (format.empty()) format = "ovf";
    if (!is_export_format(format))
        return fail(Errc::invalid_argument, fmt::format("invalid request: format '{}' is not one of ova, ovf, qcow2, raw, vmdk, vhd, vhdx, vdi", format));

    const std::string provider = compat_text(d, {"provider"}).empty() ? "vsphere" : compat_text(d, {"provider"});
    nlohmann::json r = {{"vm", plan.vm_path}, {"output_dir", out}, {"format", format}, {"provider", provider}};
    if (compat_flag(d, "compress") || compat_flag(options, "compress")) r["compress"] = true;
    if (compat_flag(d, "overwrite") || compat_flag(options, "overwrite")) r["overwrite"] = true;
    if (compat_flag(d, "resume")) r["resume"] = true;
    if (const auto &p = compat_field(options, "parallel_downloads"); p.is_number_integer())
        r["parallel"] = std::clamp(p.get<int>(), 1, 16);
    if (const auto &t = compat_field(d, "transport"); t.is_string()) r["transport"] = t;
    if (provider == "vsphere") {
        r["connection"] = vsphere_connection(d, config);
        plan.host = host_of(compat_text(r["connection"], {"url"}));
        if (!is_export_format(method) && !method.empty() && method != "auto" && method != "govc" && method != "ctl" && method != "web")
            r["transport"] = method == "datastore" ? "datastore" : "nfc";
    } else {
        r["config"] = provider_config(d, config, provider);
        if (!method.empty() && !is_export_format(method)) r["method"] = method;
        plan.host = provider;
    }
    const auto &h2k = compat_field(d, "hyper2kvm_integration");
    if (compat_flag(h2k, "enabled")) {
        plan.handoff = h2k;
        // hyper2kvm converts disks; give it disks it can read without an OVA around them.
        if (format == "ova") r["format"] = "ovf";
    }
    plan.operation = "export.run";
    plan.request = std::move(r);
    return plan;
}

nlohmann::json shown_definition(const nlohmann::json &d, const JobPlan &plan) {
    nlohmann::json s = redact_secrets(d);
    s["vm_path"] = plan.vm_path;
    s["name"] = plan.name;
    s["output_dir"] = plan.request.value("output_dir", "");
    s["format"] = plan.request.value("format", "");
    s["provider"] = plan.request.value("provider", "vsphere");
    if (!s.contains("compress")) s["compress"] = plan.request.value("compress", false);
    if (!s.contains("export_method")) s["export_method"] = "";
    if (s.contains("vcenter") && s["vcenter"].is_object()) s["vcenter"].erase("password");
    s.erase("password");
    return s;
}

nlohmann::json compat_progress(const nlohmann::json &p, std::string_view status) {
    const auto u = [&](const char *k) -> std::uint64_t { return p.is_object() && p.contains(k) && p[k].is_number() ? p[k].get<std::uint64_t>() : 0; };
    const std::uint64_t done = u("bytes_done"), total = u("bytes_total");
    double percent = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 0.0;
    if (status == "completed") percent = 100.0;
    percent = std::round(std::min(percent, 100.0) * 100.0) / 100.0;
    const double rate = p.is_object() && p.contains("rate_bytes_per_sec") && p["rate_bytes_per_sec"].is_number() ? p["rate_bytes_per_sec"].get<double>() : 0.0;
    const double mbps = std::round(rate / 1e6 * 100.0) / 100.0;
    nlohmann::json eta = nullptr;
    std::string remaining = "unknown";
    if (status == "completed") {
        eta = 0;
        remaining = "0s";
    } else if (p.is_object() && p.contains("eta_seconds") && p["eta_seconds"].is_number() && p["eta_seconds"].get<double>() >= 0 && rate > 0) {
        eta = p["eta_seconds"];
        remaining = go_duration(p["eta_seconds"].get<double>());
    }
    std::string phase = p.is_object() ? p.value("phase", "") : "";
    if (phase.empty()) phase = status == "pending" ? "queued" : std::string(status);
    return {{"phase", phase},
            {"percent_complete", percent},
            {"percentage", percent},
            {"bytes_downloaded", done},
            {"bytes_transferred", done},
            {"total_bytes", total},
            {"transfer_rate_mbps", mbps},
            {"speed_mbps", mbps},
            {"rate_bytes_per_sec", rate},
            {"estimated_remaining", remaining},
            {"eta_seconds", eta},
            {"current_file", p.is_object() ? p.value("current_item", "") : ""},
            {"current_step", phase},
            {"files_downloaded", u("items_done")},
            {"total_files", u("items_total")}};
}

nlohmann::json compat_export_result(const nlohmann::json &result, const nlohmann::json &request, double seconds) {
    nlohmann::json files = result.value("files", nlohmann::json::array());
    std::uint64_t total = 0;
    std::string ovf;
    for (const auto &f : files) {
        std::error_code ec;
        const auto path = f.get<std::string>();
        const auto n = std::filesystem::file_size(path, ec);
        if (!ec) total += n;
        if (path.ends_with(".ovf") || path.ends_with(".ova")) ovf = path;
    }
    const auto &vm = compat_field(result, "vm");
    return {{"vm_name", vm.value("name", "")},
            {"output_dir", request.value("output_dir", "")},
            {"ovf_path", ovf},
            {"files", files},
            {"output_files", files},
            {"total_size", total},
            // The old SDK reads a Go time.Duration: nanoseconds.
            {"duration", static_cast<std::int64_t>(std::llround(seconds * 1e9))},
            {"duration_seconds", seconds},
            {"success", true},
            {"export_method", result.value("method", "")},
            {"bytes_received", result.value("bytes_received", 0)},
            {"snapshot_used", result.value("snapshot_used", false)}};
}

}  // namespace hypersdk::service
