#include "http_server.hpp"

#include <hypersdk/log.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <fmt/format.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

namespace hypervisord {
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using hypersdk::service::Service;

namespace {

constexpr auto read_timeout = std::chrono::seconds(120);
constexpr std::size_t body_limit = 64u << 20;

hypersdk::service::Request to_service_request(const http::request<http::string_body> &req, const std::string &peer) {
    hypersdk::service::Request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    for (const auto &f : req) {
        std::string name(f.name_string());
        for (auto &c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(f.value());
    }
    r.body = req.body();
    r.peer = peer;
    return r;
}

std::string_view content_type_of(const std::string &path) {
    const auto dot = path.rfind('.');
    const std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
    if (ext == "html") return "text/html; charset=utf-8";
    if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
    if (ext == "css") return "text/css; charset=utf-8";
    if (ext == "svg") return "image/svg+xml";
    if (ext == "png") return "image/png";
    if (ext == "json") return "application/json";
    if (ext == "ico") return "image/x-icon";
    return "application/octet-stream";
}

// The dashboard's files: GET / is sent to /dashboard/, /dashboard/<file> comes from the folder.
// Only plain names below the folder: no "..", no hidden files, no symlinks out of it.
std::optional<hypersdk::service::Response> dashboard_file(const std::string &dir, const std::string &method, const std::string &target) {
    if (dir.empty() || (method != "GET" && method != "HEAD")) return std::nullopt;
    const std::string path = target.substr(0, target.find('?'));
    hypersdk::service::Response r;
    if (path == "/" || path == "/dashboard") {
        r.status = 302;
        r.content_type = "text/plain";
        r.headers.emplace_back("Location", "/dashboard/");
        return r;
    }
    if (path.rfind("/dashboard/", 0) != 0) return std::nullopt;
    std::string rel = path.substr(11);
    if (rel.empty()) rel = "index.html";
    std::string segment;
    for (std::size_t i = 0; i <= rel.size(); ++i) {
        if (i == rel.size() || rel[i] == '/') {
            if (segment.empty() || segment[0] == '.' || segment.find('%') != std::string::npos || segment.find('\\') != std::string::npos)
                return hypersdk::service::Response{404, "application/json", R"({"error":"not found"})", {}};
            segment.clear();
        } else {
            segment += rel[i];
        }
    }
    std::error_code ec;
    const auto root = std::filesystem::canonical(dir, ec);
    const auto file = std::filesystem::canonical(std::filesystem::path(dir) / rel, ec);
    if (ec || file.string().rfind(root.string() + "/", 0) != 0 || !std::filesystem::is_regular_file(file))
        return hypersdk::service::Response{404, "application/json", R"({"error":"not found"})", {}};
    std::ifstream in(file, std::ios::binary);
    r.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    r.content_type = std::string(content_type_of(file.string()));
    // The page holds no secrets; a short cache keeps reloads cheap while an upgrade shows soon.
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'");
    return r;
}

http::response<http::string_body> to_http_response(const hypersdk::service::Response &resp, unsigned version, bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(resp.status), version};
    res.set(http::field::server, "hypervisord");
    res.set(http::field::content_type, resp.content_type);
    for (const auto &[k, v] : resp.headers) res.set(k, v);
    res.body() = resp.body;
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

// One WebSocket client: the service's messages go out in order through a queue; what the client
// sends is read and dropped (its close ends the session).
template <class Stream>
class WsSession : public std::enable_shared_from_this<WsSession<Stream>> {
public:
    WsSession(Stream &&stream, Service &service) : ws_(std::move(stream)), service_(service) {}
    ~WsSession() {
        if (subscription_) service_.unsubscribe(subscription_);
    }

    void start(http::request<http::string_body> req) {
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.async_accept(req, beast::bind_front_handler(&WsSession::on_accept, this->shared_from_this()));
    }

private:
    void on_accept(beast::error_code ec) {
        if (ec) return;
        std::weak_ptr<WsSession> weak = this->shared_from_this();
        for (auto &m : service_.welcome_messages()) send(std::move(m));
        subscription_ = service_.subscribe([weak](const std::string &message) {
            if (auto self = weak.lock()) self->send(message);
        });
        read();
    }
    void read() {
        ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
                self->closed_ = true;
                return;
            }
            self->buffer_.consume(self->buffer_.size());
            self->read();
        });
    }
    void send(std::string message) {
        net::post(ws_.get_executor(), [self = this->shared_from_this(), message = std::move(message)]() mutable {
            if (self->closed_) return;
            // A client that cannot keep up loses the oldest updates, not the daemon's memory.
            if (self->queue_.size() > 1000) self->queue_.pop_front();
            self->queue_.push_back(std::move(message));
            if (self->queue_.size() == 1) self->write();
        });
    }
    void write() {
        ws_.text(true);
        ws_.async_write(net::buffer(queue_.front()), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {
                self->closed_ = true;
                self->queue_.clear();
                return;
            }
            self->queue_.pop_front();
            if (!self->queue_.empty()) self->write();
        });
    }

    websocket::stream<Stream> ws_;
    Service &service_;
    beast::flat_buffer buffer_;
    std::deque<std::string> queue_;
    std::uint64_t subscription_ = 0;
    bool closed_ = false;
};

}  // namespace

struct HttpServer::Impl {
    Service &service;
    net::io_context ioc;
    net::thread_pool workers;
    unsigned io_threads;
    std::vector<std::shared_ptr<tcp::acceptor>> acceptors;
    std::vector<std::thread> threads;

    std::string dashboard_dir;

    Impl(Service &s, unsigned io, unsigned w, std::string dashboard)
        : service(s), ioc(static_cast<int>(io)), workers(w), io_threads(io), dashboard_dir(std::move(dashboard)) {}

    template <class Stream>
    class Session : public std::enable_shared_from_this<Session<Stream>> {
    public:
        Session(Stream &&stream, Impl &impl, bool metrics_only, std::string peer)
            : stream_(std::move(stream)), impl_(impl), metrics_only_(metrics_only), peer_(std::move(peer)) {}

        void start() {
            if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
                beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(30));
                stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
                    if (!ec) self->read();
                });
            } else {
                read();
            }
        }

    private:
        void read() {
            parser_.emplace();
            parser_->body_limit(body_limit);
            beast::get_lowest_layer(stream_).expires_after(read_timeout);
            http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
        }

        void on_read(beast::error_code ec, std::size_t) {
            if (ec == http::error::end_of_stream) return close();
            if (ec) {
                if (ec == http::error::body_limit) respond_now(hypersdk::service::Response{413, "application/json", R"({"error":"request body too large"})", {}}, 11, false);
                return;
            }
            auto req = parser_->release();
            if (websocket::is_upgrade(req) && !metrics_only_) {
                const auto target = std::string(req.target());
                if (target.rfind("/ws", 0) == 0 || target.rfind("/websocket", 0) == 0) {
                    auto denied = impl_.service.authorize(to_service_request(req, peer_));
                    if (denied) return respond_now(*denied, req.version(), false);
                    beast::get_lowest_layer(stream_).expires_never();
                    std::make_shared<WsSession<Stream>>(std::move(stream_), impl_.service)->start(std::move(req));
                    return;
                }
            }
            const unsigned version = req.version();
            const bool keep_alive = req.keep_alive();
            if (!metrics_only_) {
                if (auto file = dashboard_file(impl_.dashboard_dir, std::string(req.method_string()), std::string(req.target())))
                    return respond_now(*file, version, keep_alive);
            }
            auto sreq = to_service_request(req, peer_);
            if (metrics_only_) {
                const auto path = sreq.target.substr(0, sreq.target.find('?'));
                if (path != "/metrics" && path != "/health") {
                    return respond_now(hypersdk::service::Response{404, "application/json", R"({"error":"this address serves /metrics and /health only"})", {}},
                                       version, keep_alive);
                }
                // The metrics port is for scrapers inside the cluster: no credentials asked there.
                sreq.metrics_port = true;
            }
            // The service may block (a cancel waits for the export to stop): not on an I/O thread.
            net::post(impl_.workers, [self = this->shared_from_this(), sreq = std::move(sreq), version, keep_alive]() mutable {
                auto resp = self->impl_.service.handle(sreq);
                net::post(self->stream_.get_executor(), [self, resp = std::move(resp), version, keep_alive]() mutable {
                    self->respond_now(resp, version, keep_alive);
                });
            });
        }

        void respond_now(const hypersdk::service::Response &resp, unsigned version, bool keep_alive) {
            auto res = std::make_shared<http::response<http::string_body>>(to_http_response(resp, version, keep_alive));
            beast::get_lowest_layer(stream_).expires_after(read_timeout);
            http::async_write(stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, std::size_t) {
                if (ec) return;
                if (!res->keep_alive()) return self->close();
                self->read();
            });
        }

        void close() {
            beast::error_code ec;
            beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
        }

        Stream stream_;
        Impl &impl_;
        bool metrics_only_;
        std::string peer_;
        beast::flat_buffer buffer_;
        std::optional<http::request_parser<http::string_body>> parser_;
    };

    void accept(std::shared_ptr<tcp::acceptor> acceptor, std::shared_ptr<ssl::context> tls, bool metrics_only) {
        acceptor->async_accept(net::make_strand(ioc), [this, acceptor, tls, metrics_only](beast::error_code ec, tcp::socket socket) {
            if (ec) {
                if (ec == net::error::operation_aborted) return;
            } else {
                std::string peer;
                beast::error_code pe;
                const auto ep = socket.remote_endpoint(pe);
                if (!pe) peer = ep.address().to_string() + ":" + std::to_string(ep.port());
                if (tls) {
                    std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
                        beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *tls), *this, metrics_only, peer)
                        ->start();
                } else {
                    std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), *this, metrics_only, peer)->start();
                }
            }
            accept(acceptor, tls, metrics_only);
        });
    }
};

HttpServer::HttpServer(Service &service, unsigned io_threads, unsigned workers, std::string dashboard_dir)
    : impl_(std::make_unique<Impl>(service, std::max(1u, io_threads), std::max(2u, workers), std::move(dashboard_dir))) {}

HttpServer::~HttpServer() {
    stop();
    for (auto &t : impl_->threads)
        if (t.joinable()) t.join();
    impl_->workers.join();
}

hypersdk::Result<std::string> HttpServer::listen(const ListenerOptions &o) {
    const auto colon = o.address.rfind(':');
    if (colon == std::string::npos) return hypersdk::fail(hypersdk::Errc::invalid_argument, "listen address must be host:port, got " + o.address);
    std::string host = o.address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "0.0.0.0";
    unsigned long port = 0;
    try {
        port = std::stoul(o.address.substr(colon + 1));
    } catch (...) {
        return hypersdk::fail(hypersdk::Errc::invalid_argument, "listen address has no port: " + o.address);
    }
    if (port > 65535) return hypersdk::fail(hypersdk::Errc::invalid_argument, "listen port out of range: " + o.address);
    beast::error_code ec;
    const auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) return hypersdk::fail(hypersdk::Errc::invalid_argument, "listen address is not an IP address: " + host);
    std::shared_ptr<ssl::context> tls;
    if (!o.tls_cert.empty() || !o.tls_key.empty()) {
        if (o.tls_cert.empty() || o.tls_key.empty()) return hypersdk::fail(hypersdk::Errc::invalid_argument, "--tls-cert and --tls-key go together");
        tls = std::make_shared<ssl::context>(ssl::context::tls_server);
        tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        tls->use_certificate_chain_file(o.tls_cert, ec);
        if (ec) return hypersdk::fail(hypersdk::Errc::tls_error, "cannot load the TLS certificate " + o.tls_cert + ": " + ec.message());
        tls->use_private_key_file(o.tls_key, ssl::context::pem, ec);
        if (ec) return hypersdk::fail(hypersdk::Errc::tls_error, "cannot load the TLS key " + o.tls_key + ": " + ec.message());
    }
    auto acceptor = std::make_shared<tcp::acceptor>(net::make_strand(impl_->ioc));
    const tcp::endpoint endpoint{address, static_cast<unsigned short>(port)};
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return hypersdk::fail(hypersdk::Errc::io_error, fmt::format("cannot listen on {}: {}", o.address, ec.message()));
    const auto bound = acceptor->local_endpoint();
    impl_->acceptors.push_back(acceptor);
    impl_->accept(acceptor, tls, o.metrics_only);
    return fmt::format("{}://{}:{}", tls ? "https" : "http", bound.address().to_string(), bound.port());
}

void HttpServer::run() {
    for (unsigned i = 1; i < impl_->io_threads; ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
    impl_->ioc.run();
    for (auto &t : impl_->threads)
        if (t.joinable()) t.join();
    impl_->threads.clear();
}

void HttpServer::stop() { impl_->ioc.stop(); }

}  // namespace hypervisord
