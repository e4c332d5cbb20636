#include "providers/vsphere/session.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

namespace hypersdk::vsphere {
namespace {

const MoRef service_instance{"ServiceInstance", "ServiceInstance"};

MoRef ref_child(const xml::Element &e, std::string_view name) {
    const xml::Element *c = e.child(name);
    return c ? moref_of(*c) : MoRef{};
}

}  // namespace

Result<std::string> normalize_sdk_url(const std::string &url) {
    if (url.empty()) return fail(Errc::invalid_argument, "no vSphere URL given (option or GOVC_URL)");
    std::string u = url;
    if (u.find("://") == std::string::npos) u = "https://" + u;
    const auto scheme_end = u.find("://");
    const std::string scheme = u.substr(0, scheme_end);
    if (scheme != "https" && scheme != "http") return fail(Errc::invalid_argument, "vSphere URL must be https://...");
    std::string rest = u.substr(scheme_end + 3);
    // user:password@ is taken by with_environment(); it never travels further than that.
    if (const auto at = rest.substr(0, rest.find('/')).rfind('@'); at != std::string::npos) rest.erase(0, at + 1);
    const auto slash = rest.find('/');
    std::string host = rest.substr(0, slash);
    std::string path = slash == std::string::npos ? "" : rest.substr(slash);
    if (host.empty()) return fail(Errc::invalid_argument, "vSphere URL has no host");
    if (path.empty() || path == "/") path = "/sdk";
    return scheme + "://" + host + path;
}

io::http::RetryPolicy Session::retry_policy() const {
    return io::http::RetryPolicy{options_.max_attempts, options_.initial_backoff, options_.max_backoff};
}

Result<std::unique_ptr<Session>> Session::open(const ConnectionOptions &options) {
    std::unique_ptr<Session> s(new Session());
    s->options_ = options;
    HSDK_TRY(s->sdk_url_, normalize_sdk_url(options.url));
    const auto scheme_end = s->sdk_url_.find("://") + 3;
    s->host_ = s->sdk_url_.substr(scheme_end, s->sdk_url_.find('/', scheme_end) - scheme_end);
    s->server_ = s->sdk_url_.substr(0, s->sdk_url_.find('/', scheme_end));
    if (s->sdk_url_.rfind("http://", 0) == 0 && !options.insecure)
        return fail(Errc::invalid_argument, "refusing plain http:// without --insecure: credentials would travel in clear text");

    io::http::ClientOptions co;
    co.tls.insecure = options.insecure;
    co.tls.ca_file = options.ca_file;
    co.tls.thumbprint_sha256 = options.thumbprint;
    if (!options.thumbprint.empty()) HSDK_TRYV(io::http::normalize_thumbprint(options.thumbprint));
    co.connect_timeout = options.connect_timeout;
    co.stall_timeout = options.stall_timeout;
    co.request_timeout = std::chrono::seconds(300);  // SOAP calls; downloads use their own client
    co.cancel = options.cancel;
    s->http_ = std::make_unique<io::http::Client>(co);
    co.cancel = CancelToken();
    co.request_timeout = std::chrono::seconds(60);
    s->cleanup_http_ = s->http_->derive(co);

    HSDK_TRY(auto rsc, s->invoke(SoapCall("RetrieveServiceContent", service_instance)));
    const xml::Element *sc = rsc.child("returnval");
    if (sc == nullptr) return fail(Errc::remote_error, "RetrieveServiceContent: no service content in the answer");
    auto &c = s->content_;
    c.root_folder = ref_child(*sc, "rootFolder");
    c.property_collector = ref_child(*sc, "propertyCollector");
    c.view_manager = ref_child(*sc, "viewManager");
    c.search_index = ref_child(*sc, "searchIndex");
    c.session_manager = ref_child(*sc, "sessionManager");
    c.ovf_manager = ref_child(*sc, "ovfManager");
    c.file_manager = ref_child(*sc, "fileManager");
    if (const xml::Element *about = sc->child("about")) {
        c.api_type = about->child_text("apiType");
        c.api_version = about->child_text("apiVersion");
        c.full_name = about->child_text("fullName");
    }
    if (c.session_manager.empty() || c.property_collector.empty())
        return fail(Errc::remote_error, "RetrieveServiceContent: the server named no session manager or property collector");
    log(LogLevel::debug, fmt::format("vsphere: connected to {} ({})", s->server_, c.full_name));

    HSDK_TRYV(s->login());
    return s;
}

Result<void> Session::login() {
    SoapCall call("Login", content_.session_manager);
    call.text("userName", options_.username).text("password", options_.password);
    // Login changes state but is safe to repeat: a second session is harmless.
    HSDK_TRYV(invoke(call, CallKind::query));
    logged_in_ = true;
    ++logins_;
    log(LogLevel::debug, fmt::format("vsphere: logged in to {} as {}", server_, options_.username));
    return success();
}

Result<void> Session::relogin() {
    std::lock_guard lock(login_mutex_);
    log(LogLevel::info, fmt::format("vsphere: the session on {} ended; logging in again", server_));
    return login();
}

namespace {
bool session_ended(const Error &e) {
    return e.code == Errc::auth_failed && e.message.find("(NotAuthenticated)") != std::string::npos;
}
}  // namespace

Session::~Session() {
    if (logged_in_) (void)logout();
}

Result<void> Session::logout() {
    if (!logged_in_) return success();
    logged_in_ = false;
    HSDK_TRYV(invoke(SoapCall("Logout", content_.session_manager), CallKind::cleanup));
    return success();
}

Result<xml::Element> Session::invoke(const SoapCall &call, CallKind kind) {
    HSDK_TRY(std::string envelope, call.envelope());
    io::http::Client &client = kind == CallKind::cleanup ? *cleanup_http_ : *http_;
    auto once = [&]() -> Result<xml::Element> {
        if (kind == CallKind::action) return invoke_once(client, envelope, call.method());
        const CancelToken never;
        return io::http::with_retries(retry_policy(), kind == CallKind::cleanup ? never : options_.cancel,
                                      [&](unsigned) { return invoke_once(client, envelope, call.method()); });
    };
    const unsigned logins_before = logins_;
    auto r = once();
    // An ended session (expired, or closed by an administrator) refuses every call before doing
    // anything, so even an action is safe to send again after logging in.
    if (r || !logged_in_ || !session_ended(r.error()) || call.method() == "Login" || call.method() == "Logout") return r;
    {
        std::lock_guard lock(login_mutex_);
        if (logins_ == logins_before) {
            log(LogLevel::info, fmt::format("vsphere: the session on {} ended; logging in again", server_));
            HSDK_TRYV(login());
        }
    }
    return once();
}

Result<xml::Element> Session::invoke_once(io::http::Client &client, const std::string &envelope, const std::string &method) {
    io::http::Request req;
    req.method = "POST";
    req.url = sdk_url_;
    req.body = envelope;
    req.headers = {"Content-Type: text/xml; charset=utf-8",
                   fmt::format("SOAPAction: \"urn:vim25/{}\"", content_.api_version.empty() ? "6.5" : content_.api_version)};
    auto resp = client.send(req);
    if (!resp) return fail(resp.error().with_context(method));
    const auto &r = resp.value();
    if (r.status != 200 && r.status != 500) return fail(io::http::status_error(r.status, "POST", sdk_url_).with_context(method));
    auto doc = parse_soap(r.body);
    if (!doc) {
        if (r.status == 500) return fail(io::http::status_error(r.status, "POST", sdk_url_).with_context(method));
        return fail(doc.error().with_context(method));
    }
    if (auto fault = find_fault(doc.value())) return fail(fault_error(*fault, method));
    if (r.status != 200) return fail(io::http::status_error(r.status, "POST", sdk_url_).with_context(method));
    const xml::Element *body = doc.value().child("Body");
    if (body == nullptr || body->children.empty())
        return fail(Errc::remote_error, fmt::format("{}: the answer has no SOAP body", method));
    xml::Element response = body->children.front();
    return response;
}

}  // namespace hypersdk::vsphere
