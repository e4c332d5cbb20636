// The daemon's network face: HTTP/1.1 (keep-alive) and WebSocket on Boost.Beast, plain or TLS,
// in front of a hypersdk::service::Service. Requests run on a worker pool, never on the I/O
// threads, so a slow route (a cancel waiting for its export to stop, a VM listing) holds up only
// its own connection.
#pragma once

#include <hypersdk/service.hpp>

#include <memory>
#include <string>

namespace hypervisord {

struct ListenerOptions {
    std::string address = "127.0.0.1:8080";  // host:port
    std::string tls_cert, tls_key;            // PEM files; both or neither
    bool metrics_only = false;                // serves /metrics and /health only (--metrics-listen)
};

class HttpServer {
public:
    // Threads: I/O threads and request workers. `dashboard_dir` holds the dashboard's files, served
    // at / and /dashboard/ ("" = no dashboard).
    HttpServer(hypersdk::service::Service &service, unsigned io_threads, unsigned workers, std::string dashboard_dir = {});
    ~HttpServer();
    // Binds now (an error names the address); serving starts with run().
    hypersdk::Result<std::string> listen(const ListenerOptions &options);
    void run();   // returns after stop()
    void stop();  // from any thread (a signal handler's thread)

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hypervisord
