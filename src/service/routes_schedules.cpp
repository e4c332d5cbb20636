#include "service/routes.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::service::routes {
namespace {

Response schedule_error(const Error &e) { return error_response(status_for(e.code), e.message); }

Response schedule_body(const Request &req, nlohmann::json &out) {
    const auto body = parse_body(req);
    if (!body.error.empty()) return error_response(400, body.error);
    if (!body.value.is_object()) return error_response(400, "invalid request: expected a JSON object");
    out = body.value;
    return {};
}

}  // namespace

Response schedules_list(ServiceImpl &s, const Request &, const RouteMatch &) {
    // The old SDK client parses a bare list.
    return json_response(200, s.schedules().list());
}

// GET /schedules/preview?schedule=<cron>&count=N: the next firings, for a schedule form.
Response schedules_preview(ServiceImpl &, const Request &, const RouteMatch &m) {
    const auto it = m.target.query.find("schedule");
    const std::string text = it != m.target.query.end() ? it->second : (m.target.query.count("cron") ? m.target.query.at("cron") : "");
    if (text.empty()) return error_response(400, "invalid request: schedule (a cron expression) is required");
    auto cron = parse_cron(text);
    if (!cron) return error_response(400, cron.error().message);
    std::size_t count = 5;
    if (m.target.query.count("count")) count = std::clamp<std::size_t>(std::strtoull(m.target.query.at("count").c_str(), nullptr, 10), 1, 50);
    nlohmann::json runs = nlohmann::json::array();
    auto t = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
        t = next_after(cron.value(), t, false);
        if (t == TimePoint::max()) break;
        runs.push_back(rfc3339(t));
    }
    return json_response(200, {{"schedule", text}, {"next_runs", runs}, {"timestamp", rfc3339(Clock::now())}});
}

Response schedules_create(ServiceImpl &s, const Request &req, const RouteMatch &) {
    nlohmann::json body;
    if (auto r = schedule_body(req, body); r.status != 200 || !r.body.empty()) return r;
    auto created = s.schedules().create(body);
    if (!created) return schedule_error(created.error());
    return json_response(201, created.value());
}

// The seed workflow's POST /schedules/create {name, cron, job_definition}.
Response schedules_create_legacy(ServiceImpl &s, const Request &req, const RouteMatch &m) { return schedules_create(s, req, m); }

Response schedule_get(ServiceImpl &s, const Request &, const RouteMatch &m) {
    auto sch = s.schedules().get(m.params.at("id"));
    if (!sch) return error_response(404, "schedule not found: " + m.params.at("id"));
    return json_response(200, *sch);
}

Response schedule_update(ServiceImpl &s, const Request &req, const RouteMatch &m) {
    nlohmann::json body;
    if (auto r = schedule_body(req, body); r.status != 200 || !r.body.empty()) return r;
    auto updated = s.schedules().update(m.params.at("id"), body);
    if (!updated) return schedule_error(updated.error());
    return json_response(200, updated.value());
}

Response schedule_delete(ServiceImpl &s, const Request &, const RouteMatch &m) {
    auto removed = s.schedules().remove(m.params.at("id"));
    if (!removed) return schedule_error(removed.error());
    return json_response(200, {{"status", "deleted"}, {"id", m.params.at("id")}, {"timestamp", rfc3339(Clock::now())}});
}

Response schedule_enable(ServiceImpl &s, const Request &, const RouteMatch &m) {
    auto r = s.schedules().set_enabled(m.params.at("id"), true);
    if (!r) return schedule_error(r.error());
    return json_response(200, r.value());
}

Response schedule_disable(ServiceImpl &s, const Request &, const RouteMatch &m) {
    auto r = s.schedules().set_enabled(m.params.at("id"), false);
    if (!r) return schedule_error(r.error());
    return json_response(200, r.value());
}

Response schedule_trigger(ServiceImpl &s, const Request &, const RouteMatch &m) {
    auto ids = s.schedules().trigger(m.params.at("id"));
    if (!ids) return schedule_error(ids.error());
    nlohmann::json out = {{"schedule_id", m.params.at("id")}, {"job_ids", ids.value()}, {"timestamp", rfc3339(Clock::now())}};
    if (!ids.value().empty()) out["job_id"] = ids.value().front();
    return json_response(200, out);
}

// POST /backup-policies/create {name, vm_filter, schedule, retention{count, age_days}, repo?,
// export_options?, provider?, vcenter?}: a schedule whose firing backs up every matching VM.
Response backup_policy_create(ServiceImpl &s, const Request &req, const RouteMatch &) {
    nlohmann::json body;
    if (auto r = schedule_body(req, body); r.status != 200 || !r.body.empty()) return r;
    nlohmann::json sch = body;
    sch["kind"] = "backup_policy";
    nlohmann::json tmpl = body.value("export_options", nlohmann::json::object());
    for (const char *k : {"provider", "vcenter", "config", "repo"})
        if (body.contains(k)) tmpl[k] = body[k];
    sch["job_template"] = tmpl;
    sch.erase("export_options");
    sch.erase("vcenter");
    sch.erase("config");
    if (!body.contains("vm_filter")) return error_response(400, "invalid request: vm_filter is required");
    auto created = s.schedules().create(sch);
    if (!created) return schedule_error(created.error());
    return json_response(201, created.value());
}

Response webhooks_list(ServiceImpl &s, const Request &, const RouteMatch &) {
    nlohmann::json out = nlohmann::json::array();
    const auto cfg = s.config();
    std::size_t i = 0;
    for (const auto &w : cfg.webhooks) {
        nlohmann::json shown = redact_secrets(w);
        shown.erase("secret");
        if (!shown.contains("id")) shown["id"] = fmt::format("config-{}", i);
        if (!shown.contains("events")) shown["events"] = nlohmann::json::array();
        if (!shown.contains("headers")) shown["headers"] = nlohmann::json::object();
        shown["source"] = "config";
        out.push_back(shown);
        ++i;
    }
    auto rows = s.store().load("webhooks");
    if (rows)
        for (const auto &row : rows.value()) out.push_back(row.doc);
    return json_response(200, out);
}

Response webhooks_create(ServiceImpl &s, const Request &req, const RouteMatch &) {
    nlohmann::json body;
    if (auto r = schedule_body(req, body); r.status != 200 || !r.body.empty()) return r;
    nlohmann::json candidate = body;
    candidate["id"] = new_uuid();
    auto hook = parse_webhook_hook(candidate);
    if (!hook) return error_response(400, "invalid request: " + hook.error().message);
    nlohmann::json secret = nlohmann::json::object();
    nlohmann::json shown_headers = nlohmann::json::object();
    if (body.contains("headers") && body["headers"].is_object()) {
        secret["headers"] = body["headers"];
        for (const auto &[k, v] : body["headers"].items()) shown_headers[k] = "********";
    }
    if (body.contains("secret") && body["secret"].is_string()) secret["secret"] = body["secret"];
    nlohmann::json doc = {{"id", candidate["id"]},
                          {"url", redact_webhook_url(hook.value().url)},
                          // As given: the old SDK's job_completed comes back as job_completed.
                          {"events", body.contains("events") && body["events"].is_array() ? body["events"] : nlohmann::json::array()},
                          {"headers", shown_headers},
                          {"enabled", hook.value().enabled},
                          {"timeout_seconds", hook.value().timeout_seconds},
                          {"max_retries", hook.value().max_retries},
                          {"created_at", rfc3339(Clock::now())},
                          {"source", "api"}};
    // A URL with a token in its query is itself a secret: sealed, shown without the query.
    secret["url"] = hook.value().url;
    auto sealed = s.box().seal(secret);
    if (!sealed) return error_response(500, sealed.error().message);
    auto stored = s.store().put("webhooks", {candidate["id"], doc, sealed.value()});
    if (!stored) return error_response(500, stored.error().message);
    s.refresh_webhooks();
    return json_response(201, doc);
}

Response webhook_delete(ServiceImpl &s, const Request &, const RouteMatch &m) {
    const auto &id = m.params.at("id");
    if (id.rfind("config-", 0) == 0) return error_response(409, "webhook " + id + " comes from the config file: remove it there");
    auto rows = s.store().load("webhooks");
    bool found = false;
    if (rows)
        for (const auto &row : rows.value()) found |= row.id == id;
    if (!found) return error_response(404, "webhook not found: " + id);
    auto removed = s.store().remove("webhooks", id);
    if (!removed) return error_response(500, removed.error().message);
    s.refresh_webhooks();
    return json_response(200, {{"status", "deleted"}, {"id", id}, {"timestamp", rfc3339(Clock::now())}});
}

Response webhooks_test(ServiceImpl &s, const Request &req, const RouteMatch &) {
    nlohmann::json body;
    if (auto r = schedule_body(req, body); r.status != 200 || !r.body.empty()) return r;
    if (!body.contains("url")) return error_response(400, "invalid request: url is required");
    body["id"] = "test";
    auto hook = parse_webhook_hook(body);
    if (!hook) return error_response(400, "invalid request: " + hook.error().message);
    auto result = s.webhooks().test(hook.value());
    if (!result) return error_response(502, result.error().message);
    return json_response(200, result.value());
}

}  // namespace hypersdk::service::routes
