// The existing daemon's job vocabulary mapped onto the library's operations: a submitted job
// definition (old SDK fields and the seed workflow's names alike) becomes an export.run request,
// and a job record is shown in the shapes the old SDK clients parse.
#pragma once

#include <hypersdk/service.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace hypersdk::service {

struct JobPlan {
    std::string operation;     // "export.run"
    nlohmann::json request;    // complete, with secrets (never stored in clear, never shown)
    std::string name;          // job name (given, or the VM's)
    std::string vm_path;
    std::string host;          // provider endpoint, for the per-host concurrency limit
    nlohmann::json handoff;    // hyper2kvm_integration settings, null when off
};

// A definition from POST /jobs/submit (or a schedule's template). invalid_argument names the field
// in the words the old daemon used: "invalid request: vm_path is required".
Result<JobPlan> plan_submitted_job(const nlohmann::json &definition, const Config &config);

// The vCenter connection of a request: its own (vcenter{server, username, password, insecure} or
// top-level vcenter_url/username/password/insecure), else the daemon's providers.vsphere; what both
// leave out comes from GOVC_* in the library.
nlohmann::json vsphere_connection(const nlohmann::json &body, const Config &config);
// The `config` of an operation for `provider`: vsphere_connection, or providers.<name> with the
// request's own config merged over it.
nlohmann::json provider_config(const nlohmann::json &body, const Config &config, const std::string &provider);

// The definition as jobs show it: the old SDK's field names, secrets replaced by "********".
nlohmann::json shown_definition(const nlohmann::json &definition, const JobPlan &plan);

// Job states of this surface: the library's queued and succeeded are pending and completed.
std::string_view compat_state(std::string_view library_state) noexcept;

// The progress fields of /jobs/progress from the library's progress JSON (to_json(ProgressInfo)).
nlohmann::json compat_progress(const nlohmann::json &library_progress, std::string_view status);

// The old SDK's JobResult from export.run's result.
nlohmann::json compat_export_result(const nlohmann::json &result, const nlohmann::json &request, double seconds);

}  // namespace hypersdk::service
