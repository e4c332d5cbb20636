// The Service behind hypervisord: routes (route_table.cpp) over the job board, the schedules, the
// webhook sender, auth, metrics and the WebSocket subscribers.
#pragma once

#include "service/auth.hpp"
#include "service/jobs.hpp"
#include "service/metrics.hpp"
#include "service/schedules.hpp"
#include "service/secret_box.hpp"
#include "service/store.hpp"
#include "service/util.hpp"
#include "service/webhooks.hpp"

#include <hypersdk/service.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hypersdk::service {

class ServiceImpl;

struct RouteMatch {
    std::map<std::string, std::string> params;  // {id} -> value
    Target target;
};

struct Route {
    std::string method;    // "GET", "POST", ... ("*" = any)
    std::string pattern;   // "/jobs/{id}" - also the metrics label
    Role role;             // needed role; public routes have `open` set
    bool open = false;     // no credentials needed (/health, /api/login)
    std::function<Response(ServiceImpl &, const Request &, const RouteMatch &)> handler;
};

// Every route, in match order (fixed paths before patterns).
const std::vector<Route> &route_table();

class ServiceImpl final : public Service {
public:
    explicit ServiceImpl(Config config);
    ~ServiceImpl() override;
    Result<void> init();

    Response handle(const Request &request) override;
    std::unique_ptr<Response> authorize(const Request &request) override;
    std::uint64_t subscribe(EventSink sink) override;
    void unsubscribe(std::uint64_t id) override;
    std::vector<std::string> welcome_messages() override;
    void reload(Config config) override;
    void shutdown() override;

    // For the route handlers.
    Config config() const;
    JobBoard &jobs() { return *jobs_; }
    ScheduleBook &schedules() { return *schedules_; }
    WebhookSender &webhooks() { return *webhooks_; }
    Auth &auth() { return auth_; }
    Metrics &metrics() { return metrics_; }
    Store &store() { return *store_; }
    SecretBox &box() { return *box_; }
    nlohmann::json status_json() const;
    std::string metrics_text() const;
    // Sets the sender's hooks from the config's and the stored ones.
    void refresh_webhooks();
    // Submits the jobs a schedule firing makes.
    Result<std::vector<std::string>> fire_schedule(const nlohmann::json &schedule, const nlohmann::json &tmpl);
    Result<std::string> submit_definition(const nlohmann::json &definition, const std::string &schedule_id = {}, const nlohmann::json *policy = nullptr);
    void broadcast(const std::string &type, const nlohmann::json &data);

private:
    void on_job_event(const std::string &event, const JobRecord &job, const nlohmann::json &shown);

    mutable std::mutex config_mutex_;
    Config config_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    std::unique_ptr<Store> store_;
    std::unique_ptr<SecretBox> box_;
    Auth auth_;
    std::unique_ptr<AuditLog> audit_;
    Metrics metrics_;
    std::unique_ptr<WebhookSender> webhooks_;
    std::unique_ptr<JobBoard> jobs_;
    std::unique_ptr<ScheduleBook> schedules_;
    std::mutex subscribers_mutex_;
    std::map<std::uint64_t, EventSink> subscribers_;
    std::uint64_t next_subscriber_ = 1;
    bool shut_down_ = false;
};

JobBoardSettings board_settings(const Config &config);

}  // namespace hypersdk::service
