// The route handlers, grouped by what they serve; route_table.cpp lists them.
#pragma once

#include "service/service_impl.hpp"

#include <optional>

namespace hypersdk::service::routes {

using Handler = Response(ServiceImpl &, const Request &, const RouteMatch &);

// Daemon (routes_daemon.cpp)
Handler health, status, capabilities, openapi, metrics, login, logout, whoami, v1_op, cost_estimate, cost_compare;
// Jobs (routes_jobs.cpp)
Handler jobs_submit, jobs_query, job_get, jobs_cancel, job_progress, job_logs, job_eta;
// Schedules, backup policies and webhooks (routes_schedules.cpp)
Handler schedules_list, schedules_preview, schedules_create, schedules_create_legacy, schedule_get, schedule_update, schedule_delete, schedule_enable,
    schedule_disable, schedule_trigger, backup_policy_create, webhooks_list, webhooks_create, webhook_delete, webhooks_test;
// VMs and the conveniences of the hyper2kvm workflow (routes_vms.cpp)
Handler vms_list, vms_info, cbt_enable, cbt_disable, cbt_status, incremental_analyze, convert, import_to_kvm, parse_vmdk;

// Runs an operation on the calling thread: nullopt with `result` set, or the error as a response
// (400 for invalid requests).
std::optional<Response> run_sync(const std::string &operation, const nlohmann::json &request, nlohmann::json &result);
int status_for(Errc code);

}  // namespace hypersdk::service::routes
