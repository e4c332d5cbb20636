// hypervisord: the REST daemon over libhypersdk's operations (the routes the existing hypervisord
// and its SDK clients use), a client of the public C++ API like hsdk. Logs go to stderr, one line
// each: "<time> <LEVEL> <message>" ("job submitted: <id>", "job completed: <id>", "job failed: <id>: ...").
#include "http_server.hpp"

#include <hypersdk/executor.hpp>
#include <hypersdk/job.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/ops.hpp>
#include <hypersdk/service.hpp>
#include <hypersdk/version.hpp>

#include <CLI/CLI.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <csignal>
#include <filesystem>
#include <cstdio>
#include <mutex>
#include <pthread.h>
#include <thread>

namespace {

struct Options {
    std::string config_file, listen, metrics_listen, tls_cert, tls_key, database, state_dir, log_level = "info", dashboard_dir;
    bool no_auth = false;
    unsigned workers = 0;
};

struct DaemonSettings {
    hypersdk::service::Config service;
    hypervisord::ListenerOptions main, metrics;
    bool has_metrics = false;
    std::vector<std::string> plugins;
};

bool loopback(const std::string &address) {
    const auto host = address.substr(0, address.rfind(':'));
    return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1" || host.rfind("127.", 0) == 0;
}

hypersdk::Result<DaemonSettings> load_settings(const Options &o) {
    nlohmann::json doc = nlohmann::json::object();
    if (!o.config_file.empty()) {
        HSDK_TRY(auto d, hypersdk::service::read_config_document(o.config_file));
        doc = std::move(d);
    }
    HSDK_TRY(auto cfg, hypersdk::service::service_config(doc));
    DaemonSettings s;
    const auto daemon = doc.value("daemon", nlohmann::json::object());
    s.main.address = !o.listen.empty() ? o.listen : daemon.value("address", "127.0.0.1:8080");
    s.main.tls_cert = !o.tls_cert.empty() ? o.tls_cert : daemon.value("tls_cert", "");
    s.main.tls_key = !o.tls_key.empty() ? o.tls_key : daemon.value("tls_key", "");
    const std::string metrics = !o.metrics_listen.empty() ? o.metrics_listen : daemon.value("metrics_address", "");
    if (!metrics.empty()) {
        s.has_metrics = true;
        s.metrics.address = metrics;
        s.metrics.metrics_only = true;
    }
    if (!o.database.empty()) cfg.database_path = o.database;
    if (!o.state_dir.empty()) cfg.state_dir = o.state_dir;
    if (cfg.state_dir.empty()) {
        // The state directory the seeds use; a user without access to /var/lib gets one in $HOME.
        const char *xdg = std::getenv("XDG_STATE_HOME");
        const char *home = std::getenv("HOME");
        cfg.state_dir = ::geteuid() == 0 ? "/var/lib/hypervisord"
                        : xdg               ? std::string(xdg) + "/hypervisord"
                        : home              ? std::string(home) + "/.local/state/hypervisord"
                                            : "hypervisord-state";
    }
    if (cfg.database_path.empty()) cfg.database_path = cfg.state_dir + "/hypersdk.db";
    if (cfg.audit_log_path.empty()) cfg.audit_log_path = cfg.state_dir + "/audit.log";
    if (o.workers) cfg.workers = o.workers;
    if (o.no_auth) {
        if (!loopback(s.main.address))
            return hypersdk::fail(hypersdk::Errc::invalid_argument, "--no-auth is only allowed on a loopback address (listening on " + s.main.address + ")");
        cfg.auth_required = false;
    } else if (cfg.auth_required && cfg.api_keys.empty() && cfg.users.empty()) {
        return hypersdk::fail(hypersdk::Errc::invalid_argument,
                              "authentication is required: configure auth.api_keys or auth.users, or run with --no-auth on a loopback address");
    }
    for (const auto &p : doc.value("providers", nlohmann::json::object()).value("plugins", nlohmann::json::array()))
        if (p.is_string()) s.plugins.push_back(p.get<std::string>());
    s.service = std::move(cfg);
    return s;
}

void load_plugins(const std::vector<std::string> &plugins) {
    for (const auto &p : plugins) {
        auto r = hypersdk::run_operation("providers.load", {{"path", p}});
        if (!r) hypersdk::log(hypersdk::LogLevel::error, fmt::format("provider plugin {}: {}", p, r.error().message));
        else hypersdk::log(hypersdk::LogLevel::info, fmt::format("provider plugin loaded: {}", p));
    }
}

// The dashboard: --dashboard-dir, else the source folder of a build tree, else the installed copy.
std::string dashboard_dir(const std::string &given) {
    if (given == "none") return {};
    if (!given.empty()) return given;
    for (const char *dir : {HYPERVISORD_SOURCE_DASHBOARD, HYPERVISORD_INSTALLED_DASHBOARD})
        if (std::filesystem::is_regular_file(std::filesystem::path(dir) / "index.html")) return dir;
    return {};
}

std::mutex stderr_mutex;

void configure_logging(const std::string &level_name) {
    using hypersdk::LogLevel;
    LogLevel level = LogLevel::info;
    if (level_name == "debug") level = LogLevel::debug;
    else if (level_name == "trace") level = LogLevel::trace;
    else if (level_name == "warn" || level_name == "warning") level = LogLevel::warn;
    else if (level_name == "error") level = LogLevel::error;
    hypersdk::set_log_sink(
        [](LogLevel lvl, std::string_view message) {
            const auto now = std::chrono::system_clock::now();
            std::string name(hypersdk::log_level_name(lvl));
            for (auto &c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            std::lock_guard lock(stderr_mutex);
            std::fprintf(stderr, "%s %s %.*s\n", fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now))).c_str(),
                         name.c_str(), static_cast<int>(message.size()), message.data());
            std::fflush(stderr);
        },
        level);
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"hypervisord - the REST daemon of libhypersdk: VM exports, schedules, webhooks and metrics over HTTP", "hypervisord"};
    app.set_version_flag("-V,--version", std::string("hypervisord ") + std::string(hypersdk::version()));
    Options o;
    app.add_option("-c,--config", o.config_file, "YAML config file (daemon, providers, export, database, webhooks, hyper2kvm, auth)");
    app.add_option("-l,--listen", o.listen, "host:port to serve on (default: daemon.address, else 127.0.0.1:8080)");
    app.add_option("--metrics-listen", o.metrics_listen, "also serve /metrics (no credentials) on this host:port");
    app.add_option("--tls-cert", o.tls_cert, "PEM certificate chain: serve HTTPS");
    app.add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert");
    app.add_option("--database", o.database, "SQLite database (default: database.path, else <state dir>/hypersdk.db)");
    app.add_option("--state-dir", o.state_dir, "state directory (database, audit log, credential key)");
    app.add_option("--workers", o.workers, "jobs running at once (default: daemon.workers, else 4)");
    app.add_option("--log-level", o.log_level, "error, warn, info, debug or trace")->check(CLI::IsMember({"error", "warn", "warning", "info", "debug", "trace"}));
    app.add_option("--dashboard-dir", o.dashboard_dir, "the dashboard's files (default: the installed ones; \"none\" turns the dashboard off)");
    app.add_flag("--no-auth", o.no_auth, "no API keys or sessions (only on a loopback address)");
    CLI11_PARSE(app, argc, argv);

    configure_logging(o.log_level);
    auto settings = load_settings(o);
    if (!settings) {
        std::fprintf(stderr, "hypervisord: %s\n", settings.error().message.c_str());
        return 2;
    }
    // Signals are taken by one thread with sigwait; every other thread starts with them blocked.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    hypersdk::configure_executor({settings.value().service.workers, 0, 0});
    load_plugins(settings.value().plugins);
    auto service = hypersdk::service::Service::open(settings.value().service);
    if (!service) {
        std::fprintf(stderr, "hypervisord: %s\n", service.error().message.c_str());
        return 1;
    }
    hypervisord::HttpServer server(*service.value(), 2, 32, dashboard_dir(o.dashboard_dir));
    auto url = server.listen(settings.value().main);
    if (!url) {
        std::fprintf(stderr, "hypervisord: %s\n", url.error().message.c_str());
        return 1;
    }
    hypersdk::log(hypersdk::LogLevel::info, fmt::format("hypervisord {} listening on {} (database {})", hypersdk::version(), url.value(),
                                                        settings.value().service.database_path));
    if (settings.value().has_metrics) {
        auto murl = server.listen(settings.value().metrics);
        if (!murl) {
            std::fprintf(stderr, "hypervisord: %s\n", murl.error().message.c_str());
            return 1;
        }
        hypersdk::log(hypersdk::LogLevel::info, "metrics on " + murl.value() + "/metrics");
    }

    std::thread signal_thread([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&signals, &sig) != 0) continue;
            if (sig == SIGHUP) {
                auto reloaded = load_settings(o);
                if (!reloaded) {
                    hypersdk::log(hypersdk::LogLevel::error, "SIGHUP: config not reloaded: " + reloaded.error().message);
                    continue;
                }
                load_plugins(reloaded.value().plugins);
                service.value()->reload(reloaded.value().service);
                hypersdk::log(hypersdk::LogLevel::info, "SIGHUP: config reloaded");
                continue;
            }
            hypersdk::log(hypersdk::LogLevel::info, fmt::format("signal {}: stopping", sig));
            server.stop();
            return;
        }
    });
    server.run();
    signal_thread.join();
    service.value()->shutdown();
    hypersdk::log(hypersdk::LogLevel::info, "hypervisord stopped");
    return 0;
}
