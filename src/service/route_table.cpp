#include "service/routes.hpp"

namespace hypersdk::service {

const std::vector<Route> &route_table() {
    using namespace routes;
    static const std::vector<Route> table = [] {
        std::vector<Route> t;
        auto add = [&](const char *method, const char *pattern, Role role, Handler *h, bool open = false) {
            t.push_back(Route{method, pattern, role, open, h});
        };
        add("GET", "/health", Role::read, health, true);
        add("POST", "/api/login", Role::read, login, true);
        add("POST", "/api/logout", Role::read, logout);
        add("GET", "/api/whoami", Role::read, whoami);
        add("GET", "/status", Role::read, status);
        add("GET", "/capabilities", Role::read, capabilities);
        add("GET", "/openapi.json", Role::read, openapi);
        add("GET", "/metrics", Role::read, metrics);
        add("POST", "/v1/ops/{operation}", Role::operate, v1_op);

        add("POST", "/jobs/submit", Role::operate, jobs_submit);
        add("GET", "/jobs/query", Role::read, jobs_query);
        add("POST", "/jobs/query", Role::read, jobs_query);
        add("POST", "/jobs/cancel", Role::operate, jobs_cancel);
        add("GET", "/jobs/progress/{id}", Role::read, job_progress);
        add("GET", "/jobs/logs/{id}", Role::read, job_logs);
        add("GET", "/jobs/eta/{id}", Role::read, job_eta);
        add("GET", "/jobs/{id}", Role::read, job_get);

        add("GET", "/vms/list", Role::read, vms_list);
        add("POST", "/vms/list", Role::read, vms_list);
        add("GET", "/vms/info", Role::read, vms_info);
        add("POST", "/vms/info", Role::read, vms_info);
        add("POST", "/cbt/enable", Role::operate, cbt_enable);
        add("POST", "/cbt/disable", Role::operate, cbt_disable);
        add("POST", "/cbt/status", Role::read, cbt_status);
        add("POST", "/incremental/analyze", Role::read, incremental_analyze);
        add("POST", "/cost/estimate", Role::read, cost_estimate);
        add("POST", "/cost/compare", Role::read, cost_compare);
        add("POST", "/convert", Role::operate, convert);
        add("POST", "/import-to-kvm", Role::operate, import_to_kvm);
        add("GET", "/parse-vmdk", Role::read, parse_vmdk);

        add("GET", "/schedules", Role::read, schedules_list);
        add("GET", "/schedules/preview", Role::read, schedules_preview);
        add("POST", "/schedules", Role::operate, schedules_create);
        add("POST", "/schedules/create", Role::operate, schedules_create_legacy);
        add("POST", "/schedules/{id}/enable", Role::operate, schedule_enable);
        add("POST", "/schedules/{id}/disable", Role::operate, schedule_disable);
        add("POST", "/schedules/{id}/trigger", Role::operate, schedule_trigger);
        add("GET", "/schedules/{id}", Role::read, schedule_get);
        add("PUT", "/schedules/{id}", Role::operate, schedule_update);
        add("DELETE", "/schedules/{id}", Role::operate, schedule_delete);
        add("POST", "/backup-policies/create", Role::operate, backup_policy_create);

        add("GET", "/webhooks", Role::read, webhooks_list);
        add("POST", "/webhooks", Role::admin, webhooks_create);
        add("POST", "/webhooks/configure", Role::admin, webhooks_create);
        add("POST", "/webhooks/test", Role::admin, webhooks_test);
        add("DELETE", "/webhooks/{id}", Role::admin, webhook_delete);
        return t;
    }();
    return table;
}

}  // namespace hypersdk::service
