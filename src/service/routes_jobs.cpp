#include "service/routes.hpp"

#include <fmt/format.h>

#include <set>

namespace hypersdk::service::routes {
namespace {

Response jobs_not_found(const std::string &id) { return error_response(404, "job not found: " + id); }

// The body of a submit as a list of definitions: one object, {jobs: [...]}, or an array.
std::vector<nlohmann::json> submitted_definitions(const nlohmann::json &body) {
    if (body.is_array()) return body.get<std::vector<nlohmann::json>>();
    if (body.is_object() && body.contains("jobs") && body["jobs"].is_array()) return body["jobs"].get<std::vector<nlohmann::json>>();
    return {body};
}

std::set<std::string> string_set(const nlohmann::json &v) {
    std::set<std::string> out;
    if (v.is_string()) {
        // "running,failed" in a query string
        std::string s = v.get<std::string>();
        std::size_t start = 0;
        while (start <= s.size()) {
            const auto comma = s.find(',', start);
            const auto item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (!item.empty()) out.insert(item);
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    } else if (v.is_array()) {
        for (const auto &x : v)
            if (x.is_string()) out.insert(x.get<std::string>());
    }
    return out;
}

}  // namespace

Response jobs_submit(ServiceImpl &s, const Request &req, const RouteMatch &) {
    const auto body = parse_body(req);
    if (!body.error.empty()) return error_response(400, body.error);
    const auto defs = submitted_definitions(body.value);
    nlohmann::json ids = nlohmann::json::array(), errors = nlohmann::json::array();
    std::vector<std::string> created;
    for (const auto &d : defs) {
        auto id = s.submit_definition(d);
        if (id) {
            ids.push_back(id.value());
            created.push_back(id.value());
        } else {
            errors.push_back(id.error().message);
        }
    }
    const auto now = rfc3339(Clock::now());
    nlohmann::json out = {{"job_ids", ids}, {"accepted", ids.size()}, {"rejected", errors.size()}, {"errors", errors}, {"timestamp", now}};
    if (defs.size() == 1 && created.size() == 1) {
        out["job_id"] = created[0];
        out["status"] = "pending";
        out["created_at"] = now;
    }
    // One definition that was refused: the old daemon's 400 with its reason.
    if (defs.size() == 1 && created.empty()) {
        auto r = error_response(400, errors[0].get<std::string>());
        auto b = nlohmann::json::parse(r.body);
        b.update(out);
        b["error"] = errors[0];
        r.body = b.dump();
        return r;
    }
    return json_response(created.empty() ? 400 : 200, out);
}

Response jobs_query(ServiceImpl &s, const Request &req, const RouteMatch &m) {
    nlohmann::json filter = nlohmann::json::object();
    if (req.method == "POST") {
        const auto body = parse_body(req);
        if (!body.error.empty()) return error_response(400, body.error);
        if (body.value.is_object()) filter = body.value;
    }
    for (const auto &[k, v] : m.target.query) filter[k] = v;
    std::set<std::string> ids = string_set(filter.value("job_ids", nlohmann::json()));
    if (filter.contains("job_id") && filter["job_id"].is_string()) ids.insert(filter["job_id"].get<std::string>());
    if (filter.contains("id") && filter["id"].is_string()) ids.insert(filter["id"].get<std::string>());
    const auto states = string_set(filter.contains("status") ? filter["status"] : filter.value("state", nlohmann::json()));
    std::size_t limit = 0;
    if (filter.contains("limit")) {
        const auto &l = filter["limit"];
        if (l.is_number_unsigned()) limit = l.get<std::size_t>();
        else if (l.is_string()) limit = std::strtoull(l.get<std::string>().c_str(), nullptr, 10);
    }
    nlohmann::json jobs = nlohmann::json::array();
    for (const auto &j : s.jobs().list()) {
        if (!ids.empty() && !ids.count(j.id)) continue;
        if (!states.empty() && !states.count(j.status)) continue;
        jobs.push_back(s.jobs().shown(j));
        if (limit && jobs.size() >= limit) break;
    }
    nlohmann::json out = {{"jobs", jobs}, {"total", jobs.size()}, {"timestamp", rfc3339(Clock::now())}};
    // The seed workflow reads `.status` of /jobs/query?job_id=: the one job's fields at the top too.
    if (ids.size() == 1 && jobs.size() == 1)
        for (const auto &[k, v] : jobs[0].items())
            if (!out.contains(k)) out[k] = v;
    return json_response(200, out);
}

Response job_get(ServiceImpl &s, const Request &, const RouteMatch &m) {
    const auto &id = m.params.at("id");
    auto j = s.jobs().get(id);
    if (!j) return jobs_not_found(id);
    return json_response(200, s.jobs().shown(*j));
}

Response jobs_cancel(ServiceImpl &s, const Request &req, const RouteMatch &) {
    const auto body = parse_body(req);
    if (!body.error.empty()) return error_response(400, body.error);
    std::set<std::string> ids = string_set(body.value.is_object() ? body.value.value("job_ids", nlohmann::json()) : body.value);
    if (body.value.is_object() && body.value.contains("job_id") && body.value["job_id"].is_string()) ids.insert(body.value["job_id"].get<std::string>());
    if (ids.empty()) return error_response(400, "invalid request: job_ids is required");
    nlohmann::json cancelled = nlohmann::json::array(), failed = nlohmann::json::array(), errors = nlohmann::json::object();
    for (const auto &id : ids) {
        // Under the old clients' 30 s timeout; an export stops at its next unit of work.
        auto r = s.jobs().cancel(id, std::chrono::seconds(25));
        if (r) {
            cancelled.push_back(id);
        } else {
            failed.push_back(id);
            errors[id] = r.error().message;
        }
    }
    return json_response(200, {{"cancelled", cancelled}, {"failed", failed}, {"errors", errors}, {"timestamp", rfc3339(Clock::now())}});
}

Response job_progress(ServiceImpl &s, const Request &, const RouteMatch &m) {
    const auto &id = m.params.at("id");
    auto j = s.jobs().get(id);
    if (!j) return jobs_not_found(id);
    auto p = compat_progress(j->progress, j->status);
    nlohmann::json out = p;
    out["job_id"] = id;
    out["status"] = j->status;
    out["progress"] = p;
    out["timestamp"] = rfc3339(Clock::now());
    return json_response(200, out);
}

Response job_logs(ServiceImpl &s, const Request &, const RouteMatch &m) {
    const auto &id = m.params.at("id");
    if (!s.jobs().get(id)) return jobs_not_found(id);
    std::size_t limit = 10000;
    if (m.target.query.count("limit")) limit = std::max<std::size_t>(1, std::strtoull(m.target.query.at("limit").c_str(), nullptr, 10));
    const auto lines = s.jobs().logs(id, limit);
    if (m.target.query.count("format") && m.target.query.at("format") == "json") {
        nlohmann::json logs = nlohmann::json::array();
        for (const auto &l : lines) logs.push_back({{"timestamp", l.time}, {"level", l.level}, {"message", l.message}});
        return json_response(200, {{"job_id", id}, {"logs", logs}, {"total", logs.size()}});
    }
    std::string text;
    for (const auto &l : lines) {
        std::string level = l.level;
        for (auto &c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        text += fmt::format("{} {} {}\n", l.time, level, l.message);
    }
    return text_response(200, std::move(text));
}

Response job_eta(ServiceImpl &s, const Request &, const RouteMatch &m) {
    const auto &id = m.params.at("id");
    auto j = s.jobs().get(id);
    if (!j) return jobs_not_found(id);
    const auto p = compat_progress(j->progress, j->status);
    nlohmann::json out = {{"job_id", id},
                          {"status", j->status},
                          {"estimated_remaining", p["estimated_remaining"]},
                          {"eta_seconds", p["eta_seconds"]},
                          {"percent_complete", p["percent_complete"]},
                          {"timestamp", rfc3339(Clock::now())}};
    if (p["eta_seconds"].is_number() && j->status == "running")
        out["estimated_completion"] = rfc3339(Clock::now() + std::chrono::seconds(static_cast<long long>(p["eta_seconds"].get<double>())));
    return json_response(200, out);
}

}  // namespace hypersdk::service::routes
