// Turning definitions into jobs: one submitted export, a schedule's firing, a backup policy's round.
#include "service/routes.hpp"

#include <hypersdk/job.hpp>
#include <hypersdk/ops.hpp>

#include <fmt/format.h>

#include <fnmatch.h>

#include <filesystem>

namespace hypersdk::service {
namespace {

int submit_int(const nlohmann::json &d, const char *key, int otherwise) {
    return d.is_object() && d.contains(key) && d[key].is_number_integer() ? d[key].get<int>() : otherwise;
}

std::string submit_text(const nlohmann::json &d, const char *key) {
    return d.is_object() && d.contains(key) && d[key].is_string() ? d[key].get<std::string>() : std::string();
}

// A VM of vms.list against a policy's vm_filter; every given criterion must hold.
bool policy_matches(const nlohmann::json &vm, const nlohmann::json &filter) {
    if (!filter.is_object()) return true;
    const std::string path = vm.value("inventory_path", "");
    const std::string name = vm.value("name", "");
    if (const auto dc = submit_text(filter, "datacenter"); !dc.empty() && path.rfind("/" + dc + "/", 0) != 0) return false;
    if (const auto folder = submit_text(filter, "folder"); !folder.empty()) {
        const std::string f = folder.front() == '/' ? folder : "/" + folder;
        if (path.find(f.back() == '/' ? f : f + "/") == std::string::npos) return false;
    }
    for (const char *k : {"name_pattern", "name", "pattern"})
        if (const auto pat = submit_text(filter, k); !pat.empty() && fnmatch(pat.c_str(), name.c_str(), 0) != 0) return false;
    for (const char *k : {"power_state", "status", "state"})
        if (const auto st = submit_text(filter, k); !st.empty() && st != vm.value("power_state", "")) return false;
    if (filter.contains("tags") && filter["tags"].is_array() && !filter["tags"].empty()) {
        // Only providers that report tags can match a tag filter.
        if (!vm.contains("tags") || !vm["tags"].is_array()) return false;
        for (const auto &t : filter["tags"])
            if (std::find(vm["tags"].begin(), vm["tags"].end(), t) == vm["tags"].end()) return false;
    }
    return true;
}

}  // namespace

Result<std::string> ServiceImpl::submit_definition(const nlohmann::json &d, const std::string &schedule_id, const nlohmann::json *) {
    const auto cfg = config();
    HSDK_TRY(auto plan, plan_submitted_job(d, cfg));
    JobSubmission sub;
    sub.kind = "export";
    sub.definition_shown = shown_definition(d, plan);
    sub.plan = std::move(plan);
    sub.priority = submit_int(d, "priority", 0);
    if (d.contains("depends_on")) {
        if (!d["depends_on"].is_array()) return fail(Errc::invalid_argument, "invalid request: depends_on must be a list of job ids");
        for (const auto &x : d["depends_on"])
            if (x.is_string()) sub.depends_on.push_back(x.get<std::string>());
    }
    sub.max_retries = static_cast<unsigned>(std::max(0, submit_int(d, "max_retries", submit_int(cfg.export_defaults, "max_retries", 0))));
    sub.time_window = submit_text(d, "time_window");
    sub.schedule_id = schedule_id;
    if (const auto id = submit_text(d, "id"); !id.empty()) {
        // Ids travel in URLs and log lines: plain characters only.
        if (id.size() > 128 || id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos)
            return fail(Errc::invalid_argument, "invalid request: id may hold only letters, digits, '.', '_' and '-' (at most 128)");
        sub.requested_id = id;
    }
    HSDK_TRY(auto job, jobs_->submit(std::move(sub)));
    return job.id;
}

Result<std::vector<std::string>> ServiceImpl::fire_schedule(const nlohmann::json &schedule, const nlohmann::json &tmpl) {
    const std::string id = schedule.value("id", "");
    if (schedule.value("kind", "export") != "backup_policy") {
        nlohmann::json d = tmpl;
        for (const char *k : {"priority", "time_window", "max_retries"})
            if (schedule.contains(k) && !d.contains(k) && !(schedule[k].is_string() && schedule[k].get<std::string>().empty())) d[k] = schedule[k];
        if (!d.contains("name")) d["name"] = schedule.value("name", "");
        // Every firing writes the same folder: each run replaces the last (outputs are published
        // atomically, so the previous run's files stay until the new ones are complete).
        if (!d.contains("overwrite")) d["overwrite"] = true;
        HSDK_TRY(auto job, submit_definition(d, id));
        log(LogLevel::info, fmt::format("schedule {} fired: job {}", id, job));
        return std::vector<std::string>{job};
    }
    // A backup policy: every matching VM gets a changed-block backup, then a prune by the retention.
    const auto cfg = config();
    const std::string provider = submit_text(tmpl, "provider").empty() ? "vsphere" : submit_text(tmpl, "provider");
    const nlohmann::json conn = provider_config(tmpl, cfg, provider);
    nlohmann::json listed;
    if (auto err = routes::run_sync("vms.list", {{"provider", provider}, {"config", conn}}, listed))
        return fail(Errc::remote_error, "backup policy " + schedule.value("name", id) + ": cannot list VMs: " + nlohmann::json::parse(err->body).value("error", ""));
    std::string repo = schedule.value("repo", submit_text(tmpl, "repo"));
    if (repo.empty()) {
        const std::string base = submit_text(cfg.export_defaults, "base_path");
        if (base.empty()) return fail(Errc::invalid_argument, "backup policy needs repo (or export.base_path in the config)");
        repo = (std::filesystem::path(base) / "backups" / schedule.value("name", id)).string();
    }
    const auto retention = schedule.value("retention", nlohmann::json::object());
    std::vector<std::string> ids;
    for (const auto &vm : listed.value("vms", nlohmann::json::array())) {
        if (!policy_matches(vm, schedule.value("vm_filter", nlohmann::json::object()))) continue;
        const std::string path = vm.value("inventory_path", vm.value("name", ""));
        nlohmann::json backup = {{"provider", provider}, {"config", conn}, {"vm", path}, {"repo", repo}};
        auto prepared = prepare_request("backup.run", backup);
        if (!prepared) return fail(prepared.error());
        JobSubmission sub;
        sub.kind = "operation";
        sub.plan = {"backup.run", prepared.value(), schedule.value("name", "backup") + ": " + vm.value("name", ""), path, provider, nullptr};
        sub.definition_shown = redact_secrets(redact_request("backup.run", prepared.value()));
        sub.schedule_id = id;
        sub.priority = submit_int(schedule, "priority", 0);
        HSDK_TRY(auto job, jobs_->submit(std::move(sub)));
        ids.push_back(job.id);
        nlohmann::json prune = {{"repo", repo}, {"vm", path}};
        if (retention.contains("count") && retention["count"].is_number_integer() && retention["count"].get<int>() > 0) prune["keep_last"] = retention["count"];
        if (retention.contains("age_days") && retention["age_days"].is_number()) prune["keep_days"] = retention["age_days"];
        if (prune.size() > 2) {
            auto prepared_prune = prepare_request("backup.prune", prune);
            if (!prepared_prune) return fail(prepared_prune.error());
            JobSubmission p;
            p.kind = "operation";
            p.plan = {"backup.prune", prepared_prune.value(), schedule.value("name", "backup") + ": prune " + vm.value("name", ""), path, "", nullptr};
            p.definition_shown = prepared_prune.value();
            p.depends_on = {job.id};
            p.schedule_id = id;
            HSDK_TRY(auto pj, jobs_->submit(std::move(p)));
            ids.push_back(pj.id);
        }
    }
    log(LogLevel::info, fmt::format("backup policy {} fired: {} jobs", id, ids.size()));
    return ids;
}

}  // namespace hypersdk::service
