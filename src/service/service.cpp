#include "service/service_impl.hpp"

#include <hypersdk/version.hpp>

#include <fmt/format.h>

#include <filesystem>

namespace hypersdk::service {
namespace {

bool mutating(const std::string &method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

// "/jobs/{id}" against "/jobs/abc": params {id: abc}.
bool match_pattern(const std::string &pattern, const std::string &path, std::map<std::string, std::string> &params) {
    std::size_t p = 0, q = 0;
    while (p < pattern.size() && q <= path.size()) {
        if (pattern[p] == '{') {
            const auto close = pattern.find('}', p);
            const auto name = pattern.substr(p + 1, close - p - 1);
            const auto end = path.find('/', q);
            const auto value = path.substr(q, end == std::string::npos ? std::string::npos : end - q);
            if (value.empty()) return false;
            params[name] = value;
            p = close + 1;
            q = end == std::string::npos ? path.size() : end;
            continue;
        }
        if (q >= path.size() || pattern[p] != path[q]) return false;
        ++p;
        ++q;
    }
    return p == pattern.size() && q == path.size();
}

}  // namespace

JobBoardSettings board_settings(const Config &config) {
    JobBoardSettings s;
    s.workers = config.workers ? config.workers : 4;
    s.per_host_limit = config.per_host_limit;
    const auto &sch = config.scheduler;
    if (sch.is_object() && sch.contains("retry_base_seconds") && sch["retry_base_seconds"].is_number())
        s.retry_base = std::chrono::milliseconds(static_cast<long long>(sch["retry_base_seconds"].get<double>() * 1000));
    if (sch.is_object() && sch.contains("retry_cap_seconds") && sch["retry_cap_seconds"].is_number())
        s.retry_cap = std::chrono::milliseconds(static_cast<long long>(sch["retry_cap_seconds"].get<double>() * 1000));
    s.hyper2kvm = config.hyper2kvm;
    return s;
}

Result<Service *> in_process_service() {
    static std::mutex mutex;
    // Never destroyed: its jobs may still run while the process exits, and joining them from a
    // static destructor (after the executor's statics may be gone) would hang or crash.
    static Service *service = nullptr;
    std::lock_guard lock(mutex);
    if (!service) {
        Config c;
        c.auth_required = false;
        HSDK_TRY(auto opened, Service::open(std::move(c)));
        service = opened.release();
    }
    return service;
}

Result<std::unique_ptr<Service>> Service::open(Config config) {
    auto impl = std::make_unique<ServiceImpl>(std::move(config));
    HSDK_TRYV(impl->init());
    return std::unique_ptr<Service>(std::move(impl));
}

ServiceImpl::ServiceImpl(Config config) : config_(std::move(config)), auth_(config_) {}

ServiceImpl::~ServiceImpl() { shutdown(); }

Config ServiceImpl::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

Result<void> ServiceImpl::init() {
    namespace fs = std::filesystem;
    if (!config_.state_dir.empty()) {
        std::error_code ec;
        fs::create_directories(config_.state_dir, ec);
        if (ec) return fail(Errc::io_error, "cannot create the state directory " + config_.state_dir + ": " + ec.message());
    }
    if (!config_.database_path.empty()) {
        std::error_code ec;
        const auto parent = fs::path(config_.database_path).parent_path();
        if (!parent.empty()) fs::create_directories(parent, ec);
    }
    HSDK_TRY(auto store, Store::open(config_.database_path));
    store_ = std::move(store);
    std::string key_file = config_.credential_key_file;
    if (key_file.empty() && !config_.state_dir.empty()) key_file = (fs::path(config_.state_dir) / "credentials.key").string();
    HSDK_TRY(auto box, SecretBox::open(key_file));
    box_ = std::make_unique<SecretBox>(box);
    audit_ = std::make_unique<AuditLog>(config_.audit_log_path);

    // The webhook secret: the config's, else one generated once and kept (sealed) in the database,
    // so receivers can keep verifying across restarts.
    std::string secret = config_.webhook_secret;
    if (secret.empty()) {
        HSDK_TRY(auto kept, store_->setting("webhook_secret"));
        if (kept) {
            auto opened = box_->unseal(*kept);
            if (opened && opened.value().is_string()) secret = opened.value().get<std::string>();
        }
        if (secret.empty()) {
            secret = random_hex(32);
            HSDK_TRY(auto sealed, box_->seal(secret));
            HSDK_TRYV(store_->set_setting("webhook_secret", sealed));
        }
    }
    WebhookOptions wo;
    wo.secret = secret;
    const auto &sch = config_.scheduler;
    if (sch.is_object() && sch.contains("webhook_backoff_ms") && sch["webhook_backoff_ms"].is_number_unsigned())
        wo.backoff_base = std::chrono::milliseconds(sch["webhook_backoff_ms"].get<std::uint64_t>());
    webhooks_ = std::make_unique<WebhookSender>(wo);
    refresh_webhooks();

    jobs_ = std::make_unique<JobBoard>(*store_, *box_, config_, board_settings(config_),
                                       [this](const std::string &e, const JobRecord &j, const nlohmann::json &s) { on_job_event(e, j, s); });
    HSDK_TRYV(jobs_->load());
    schedules_ = std::make_unique<ScheduleBook>(*store_, *box_, [this](const nlohmann::json &s, const nlohmann::json &t) { return fire_schedule(s, t); });
    HSDK_TRYV(schedules_->load());
    jobs_->start();
    schedules_->start();
    return success();
}

void ServiceImpl::shutdown() {
    if (shut_down_) return;
    shut_down_ = true;
    if (schedules_) schedules_->stop();
    if (jobs_) jobs_->shutdown();
    if (webhooks_) webhooks_->stop();
}

void ServiceImpl::reload(Config config) {
    auth_.reload(config);
    if (jobs_) jobs_->reload(config, board_settings(config));
    {
        std::lock_guard lock(config_mutex_);
        config_ = std::move(config);
    }
    if (!config_.webhook_secret.empty()) webhooks_->set_secret(config_.webhook_secret);
    refresh_webhooks();
}

void ServiceImpl::refresh_webhooks() {
    std::vector<WebhookHook> hooks;
    const auto cfg = config();
    std::size_t i = 0;
    for (const auto &w : cfg.webhooks) {
        nlohmann::json j = w;
        if (j.is_object() && !j.contains("id")) j["id"] = fmt::format("config-{}", i);
        ++i;
        auto hook = parse_webhook_hook(j);
        if (hook) hooks.push_back(std::move(hook).value());
        else log(LogLevel::error, "webhooks[] in the config: " + hook.error().message);
    }
    auto rows = store_->load("webhooks");
    if (rows) {
        for (auto &row : rows.value()) {
            nlohmann::json j = row.doc;
            auto secret = box_->unseal(row.sealed);
            if (secret && secret.value().is_object())
                for (const auto &[k, v] : secret.value().items()) j[k] = v;
            auto hook = parse_webhook_hook(j);
            if (hook) hooks.push_back(std::move(hook).value());
        }
    }
    webhooks_->set_hooks(std::move(hooks));
}

nlohmann::json ServiceImpl::status_json() const {
    const auto c = jobs_->counts();
    // The free space of the export folder (the dashboard's status strip, the runbook's disk check).
    nlohmann::json free_bytes = nullptr;
    const std::string export_path = config().export_defaults.value("base_path", "");
    if (!export_path.empty()) {
        std::error_code ec;
        const auto space = std::filesystem::space(export_path, ec);
        if (!ec) free_bytes = space.available;
    }
    const double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    return {{"status", "running"},
            {"version", std::string(hypersdk::version())},
            {"uptime", go_duration(up)},
            {"uptime_seconds", static_cast<std::int64_t>(up)},
            {"total_jobs", c.total},
            {"pending_jobs", c.pending},
            {"running_jobs", c.running},
            {"completed_jobs", c.completed},
            {"failed_jobs", c.failed},
            {"cancelled_jobs", c.cancelled},
            {"export_path", export_path.empty() ? nlohmann::json() : nlohmann::json(export_path)},
            {"export_free_bytes", free_bytes},
            {"timestamp", rfc3339(Clock::now())}};
}

std::string ServiceImpl::metrics_text() const {
    const auto c = jobs_->counts();
    const auto w = webhooks_->stats();
    return const_cast<Metrics &>(metrics_).render({c.running, c.pending}, w.delivered, w.failed);
}

void ServiceImpl::broadcast(const std::string &type, const nlohmann::json &data) {
    const std::string message = nlohmann::json{{"type", type}, {"timestamp", rfc3339(Clock::now())}, {"data", data}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::vector<EventSink> sinks;
    {
        std::lock_guard lock(subscribers_mutex_);
        for (const auto &[id, sink] : subscribers_) sinks.push_back(sink);
    }
    for (auto &sink : sinks) {
        try {
            sink(message);
        } catch (...) {
            // A subscriber that throws is its server's problem, not the job's.
        }
    }
}

void ServiceImpl::on_job_event(const std::string &event, const JobRecord &job, const nlohmann::json &shown) {
    if (event == "job.completed" || event == "job.failed") metrics_.job_finished(event == "job.completed", job.seconds,
                                                                               job.result.is_object() ? job.result.value("bytes_received", std::uint64_t{0}) : 0);
    nlohmann::json data = {{"job_id", job.id},
                           {"job_name", job.name},
                           {"vm_path", job.vm_path},
                           {"status", job.status},
                           {"operation", job.operation},
                           {"progress", shown["progress"]},
                           {"timestamp", rfc3339(Clock::now())}};
    if (!job.error.empty()) data["error"] = job.error;
    if (job.result.is_object()) data["result"] = job.result;
    webhooks_->emit(event, data);
    broadcast("job_update", shown);
}

std::uint64_t ServiceImpl::subscribe(EventSink sink) {
    std::lock_guard lock(subscribers_mutex_);
    const auto id = next_subscriber_++;
    subscribers_[id] = std::move(sink);
    return id;
}

void ServiceImpl::unsubscribe(std::uint64_t id) {
    std::lock_guard lock(subscribers_mutex_);
    subscribers_.erase(id);
}

std::vector<std::string> ServiceImpl::welcome_messages() {
    const auto now = rfc3339(Clock::now());
    nlohmann::json jobs = nlohmann::json::array();
    for (const auto &j : jobs_->list()) {
        if (jobs.size() >= 100) break;
        jobs.push_back(jobs_->shown(j));
    }
    return {nlohmann::json{{"type", "status"}, {"timestamp", now}, {"data", status_json()}}.dump(),
            nlohmann::json{{"type", "jobs"}, {"timestamp", now}, {"data", jobs}}.dump()};
}

std::unique_ptr<Response> ServiceImpl::authorize(const Request &request) {
    Principal who;
    Request r = request;
    // Browsers cannot set headers on a WebSocket: the dashboard sends its token as ?access_token=.
    const auto target = parse_target(request.target);
    if (const auto it = target.query.find("access_token"); it != target.query.end() && header(r, "authorization").empty())
        r.headers["authorization"] = "Bearer " + it->second;
    if (auto denied = auth_.check(r, Role::read, who)) return std::make_unique<Response>(std::move(*denied));
    return nullptr;
}

Response ServiceImpl::handle(const Request &request) {
    RouteMatch match;
    match.target = parse_target(request.target);
    std::string path = match.target.path;
    if (path.size() > 1 && path.back() == '/') path.pop_back();
    // The Kubernetes runbook reads /api/v1/status: the same routes under /api/v1.
    if (path.rfind("/api/v1/", 0) == 0) path = path.substr(7);
    match.target.path = path;

    const Route *route = nullptr;
    bool path_known = false;
    for (const auto &r : route_table()) {
        std::map<std::string, std::string> params;
        if (!match_pattern(r.pattern, path, params)) continue;
        path_known = true;
        if (r.method != "*" && r.method != request.method) continue;
        route = &r;
        match.params = std::move(params);
        break;
    }
    Response response;
    std::string label = route ? route->pattern : (path_known ? "method_not_allowed" : "unmatched");
    Principal who{"anonymous", Role::read};
    if (!route) {
        response = path_known ? error_response(405, fmt::format("method {} not allowed on {}", request.method, path))
                              : error_response(404, "not found: " + path);
    } else if (auto denied = route->open || (request.metrics_port && route->pattern == "/metrics") ? std::nullopt
                                                                                                   : auth_.check(request, route->role, who)) {
        response = std::move(*denied);
    } else {
        try {
            response = route->handler(*this, request, match);
        } catch (const std::exception &e) {
            log(LogLevel::error, fmt::format("{} {}: {}", request.method, label, e.what()));
            response = error_response(500, std::string("internal error: ") + e.what());
        }
    }
    metrics_.count_request(request.method, label, response.status);
    if (audit_ && mutating(request.method))
        audit_->write({{"timestamp", rfc3339(Clock::now())},
                       {"peer", request.peer},
                       {"principal", who.name},
                       {"role", role_name(who.role)},
                       {"method", request.method},
                       {"route", label},
                       {"path", path},
                       {"status", response.status}});
    return response;
}

}  // namespace hypersdk::service
