#include "io/http.hpp"

#include <hypersdk/log.hpp>

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <map>
#include <cctype>
#include <mutex>
#include <random>
#include <thread>

namespace hypersdk::io::http {
namespace {

constexpr std::size_t stream_buffer_bytes = 512u << 10;

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

bool iequals_prefix(std::string_view line, std::string_view name) {
    if (line.size() < name.size()) return false;
    for (std::size_t i = 0; i < name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != std::tolower(static_cast<unsigned char>(name[i]))) return false;
    return true;
}

// One request in flight: the caller's sink, the headers seen so far, and what stopped us.
struct Transfer {
    const Request *request = nullptr;
    const HeaderCheck *check = nullptr;
    const BodySink *sink = nullptr;
    CURL *easy = nullptr;
    Response response;
    bool headers_done = false;
    std::optional<Error> stop;  // set by a callback that made curl abort
};

std::size_t on_header(char *data, std::size_t size, std::size_t count, void *user) {
    auto *t = static_cast<Transfer *>(user);
    const std::string_view line(data, size * count);
    if (iequals_prefix(line, "HTTP/")) {
        // A new response (after a redirect or 100-continue): forget the previous one's headers.
        t->response.content_length.reset();
        t->response.content_range.clear();
        t->response.content_type.clear();
        t->response.headers.clear();
        return size * count;
    }
    if (const auto colon = line.find(':'); colon != std::string_view::npos && colon > 0)
        t->response.headers.emplace_back(std::string(line.substr(0, colon)), trim(line.substr(colon + 1)));
    if (iequals_prefix(line, "content-length:")) {
        const std::string v = trim(line.substr(15));
        char *end = nullptr;
        const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
        if (end != v.c_str() && *end == '\0') t->response.content_length = n;
    } else if (iequals_prefix(line, "content-range:")) {
        t->response.content_range = trim(line.substr(14));
    } else if (iequals_prefix(line, "content-type:")) {
        t->response.content_type = trim(line.substr(13));
    }
    return size * count;
}

std::size_t on_body(char *data, std::size_t size, std::size_t count, void *user) {
    auto *t = static_cast<Transfer *>(user);
    const std::size_t n = size * count;
    if (!t->headers_done) {
        t->headers_done = true;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->response.status);
        if (t->check != nullptr && *t->check) {
            if (auto ok = (*t->check)(t->response); !ok) {
                t->stop = ok.error();
                return 0;  // anything but n makes curl stop with CURLE_WRITE_ERROR
            }
        }
    }
    if (t->sink != nullptr) {
        if (auto ok = (*t->sink)(std::span<const std::byte>(reinterpret_cast<const std::byte *>(data), n)); !ok) {
            t->stop = ok.error();
            return 0;  // anything but n makes curl stop with CURLE_WRITE_ERROR
        }
        return n;
    }
    if (t->response.body.size() + n > t->request->max_body) {
        t->stop = Error{Errc::remote_error, fmt::format("response from {} is larger than {} bytes",
                                                        redact_url(t->request->url), t->request->max_body)};
        return 0;  // anything but n makes curl stop with CURLE_WRITE_ERROR
    }
    t->response.body.append(data, n);
    return n;
}

// The pinned thumbprint replaces chain and host name checks: the handshake succeeds only if the
// server's own certificate has exactly this SHA-256, so nothing is sent to an impostor.
int verify_pinned(X509_STORE_CTX *store, void *arg) {
    const auto *expected = static_cast<const std::string *>(arg);
    X509 *cert = X509_STORE_CTX_get0_cert(store);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (cert == nullptr || X509_digest(cert, EVP_sha256(), md, &len) != 1) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    std::string hex;
    for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    if (hex != *expected) {
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    return 1;
}

CURLcode on_ssl_ctx(CURL *, void *ssl_ctx, void *arg) {
    SSL_CTX_set_cert_verify_callback(static_cast<SSL_CTX *>(ssl_ctx), verify_pinned, arg);
    return CURLE_OK;
}

}  // namespace

Errc curl_errc(int curl_code) {
    switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_OPERATION_TIMEDOUT:
        return Errc::timeout;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
        return Errc::tls_error;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return Errc::invalid_argument;
    case CURLE_OUT_OF_MEMORY:
        return Errc::no_memory;
    default:
        return Errc::network_error;
    }
}

// Transfers of one client reuse easy handles, each in its own multi handle: the multi keeps the
// connections of finished transfers, so the next request to the same server skips the TCP and TLS
// handshakes. A handle serves one thread at a time (libcurl does not share live connections between
// concurrent threads); the pool keeps as many as were in flight at once, up to a bound.
class Client::HandlePool {
public:
    struct Handle {
        std::unique_ptr<CURL, void (*)(CURL *)> easy{nullptr, curl_easy_cleanup};
        std::unique_ptr<CURLM, CURLMcode (*)(CURLM *)> multi{nullptr, curl_multi_cleanup};
    };
    // Returns its handle to the pool when the request is over.
    struct Lease {
        Lease(HandlePool &pool, Handle h) : pool(pool), handle(std::move(h)) {}
        ~Lease() { pool.release(std::move(handle)); }
        Lease(const Lease &) = delete;
        Lease &operator=(const Lease &) = delete;
        HandlePool &pool;
        Handle handle;
    };

    Result<Handle> acquire() {
        {
            std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                Handle h = std::move(idle_.back());
                idle_.pop_back();
                // curl_easy_reset drops the list of cookie files without freeing it (libcurl 7.88
                // leaks one entry per reuse): clear it first. The shared cookies stay in the share.
                curl_easy_setopt(h.easy.get(), CURLOPT_COOKIEFILE, static_cast<char *>(nullptr));
                curl_easy_reset(h.easy.get());  // options only: live connections stay in the multi
                return h;
            }
        }
        Handle h;
        h.easy.reset(curl_easy_init());
        h.multi.reset(curl_multi_init());
        if (!h.easy || !h.multi) return fail(Errc::no_memory, "cannot create an HTTP transfer");
        return h;
    }

    void release(Handle h) {
        std::lock_guard lock(mutex_);
        if (idle_.size() < max_idle) idle_.push_back(std::move(h));
    }

private:
    static constexpr std::size_t max_idle = 32;
    std::mutex mutex_;
    std::vector<Handle> idle_;
};

struct Client::Shared {
    CURLSH *share = nullptr;
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;

    Shared() {
        global_init();
        share = curl_share_init();
        if (share == nullptr) throw std::bad_alloc();
        curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Shared::lock);
        curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Shared::unlock);
        curl_share_setopt(share, CURLSHOPT_USERDATA, this);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    // The pools' easy handles still name the share: they go first, or curl_share_cleanup refuses
    // (CURLSHE_IN_USE) and the share leaks.
    ~Shared() {
        pools.clear();
        curl_share_cleanup(share);
    }

    // Clients of one session (derived ones included) with the same TLS settings draw from one
    // pool, so a lease download or a clean-up call reuses the connection a SOAP call left open
    // instead of opening its own. Different settings never share: libcurl does not compare a
    // pinned thumbprint when it picks a connection to reuse.
    std::shared_ptr<HandlePool> pool_for(const TlsOptions &tls) {
        const std::string key = fmt::format("{}\n{}\n{}", tls.insecure, tls.ca_file, tls.thumbprint_sha256);
        std::lock_guard lock(pools_mutex);
        auto &pool = pools[key];
        if (!pool) pool = std::make_shared<HandlePool>();
        return pool;
    }
    std::mutex pools_mutex;
    std::map<std::string, std::shared_ptr<HandlePool>> pools;
    static void lock(CURL *, curl_lock_data data, curl_lock_access, void *user) {
        static_cast<Shared *>(user)->locks[static_cast<std::size_t>(data) % CURL_LOCK_DATA_LAST].lock();
    }
    static void unlock(CURL *, curl_lock_data data, void *user) {
        static_cast<Shared *>(user)->locks[static_cast<std::size_t>(data) % CURL_LOCK_DATA_LAST].unlock();
    }
};


Result<std::string> normalize_thumbprint(std::string_view text) {
    std::string hex;
    for (char c : text) {
        if (c == ':' || c == ' ') continue;
        if (!std::isxdigit(static_cast<unsigned char>(c)))
            return fail(Errc::invalid_argument, "thumbprint: not a hexadecimal SHA-256 digest");
        hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (hex.size() != 64) return fail(Errc::invalid_argument, "thumbprint: a SHA-256 thumbprint has 32 bytes (64 hex digits)");
    return hex;
}

Client::Client(ClientOptions options) : Client(std::move(options), std::make_shared<Shared>()) {}

Client::Client(ClientOptions options, std::shared_ptr<Shared> shared)
    : options_(std::move(options)), shared_(std::move(shared)), pool_(shared_->pool_for(options_.tls)) {
    if (!options_.tls.thumbprint_sha256.empty()) {
        auto t = normalize_thumbprint(options_.tls.thumbprint_sha256);
        // An unparsable pin must never fall back to "no pin": keep a value nothing can match.
        thumbprint_ = t ? t.value() : std::string("invalid");
    }
}

Client::~Client() = default;

std::unique_ptr<Client> Client::derive(ClientOptions options) const {
    return std::unique_ptr<Client>(new Client(std::move(options), shared_));
}

std::string Client::cookie_header() const {
    std::unique_ptr<CURL, void (*)(CURL *)> e(curl_easy_init(), curl_easy_cleanup);
    if (!e) return {};
    curl_easy_setopt(e.get(), CURLOPT_SHARE, shared_->share);
    curl_easy_setopt(e.get(), CURLOPT_COOKIEFILE, "");
    curl_slist *list = nullptr;
    if (curl_easy_getinfo(e.get(), CURLINFO_COOKIELIST, &list) != CURLE_OK) return {};
    std::string pairs;
    // Netscape format: domain, subdomains, path, secure, expiry, name, value (tab-separated).
    for (curl_slist *l = list; l != nullptr; l = l->next) {
        std::vector<std::string_view> fields;
        std::string_view line(l->data);
        for (std::size_t start = 0;;) {
            const auto tab = line.find('\t', start);
            fields.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
            if (tab == std::string_view::npos) break;
            start = tab + 1;
        }
        if (fields.size() < 7) continue;
        pairs += fmt::format("{}{}={}", pairs.empty() ? "" : "; ", fields[5], fields[6]);
    }
    curl_slist_free_all(list);
    curl_easy_setopt(e.get(), CURLOPT_COOKIEFILE, static_cast<char *>(nullptr));
    return pairs.empty() ? std::string() : "Cookie: " + pairs;
}

std::string Response::header(std::string_view name) const {
    for (const auto &[n, v] : headers)
        if (n.size() == name.size() && iequals_prefix(n, name)) return v;
    return {};
}

Result<Response> Client::send(const Request &request) { return perform(request, nullptr, nullptr); }

Result<Response> Client::stream(const Request &request, const HeaderCheck &check, const BodySink &sink) {
    return perform(request, &check, &sink);
}

Result<Response> Client::perform(const Request &request, const HeaderCheck *check, const BodySink *sink) {
    HSDK_TRYV(options_.cancel.check());
    if (!options_.tls.thumbprint_sha256.empty() && thumbprint_ == "invalid")
        return fail(normalize_thumbprint(options_.tls.thumbprint_sha256).error());

    HSDK_TRY(auto handle, pool_->acquire());
    HandlePool::Lease lease(*pool_, std::move(handle));
    CURL *e = lease.handle.easy.get();
    CURLM *multi = lease.handle.multi.get();

    Transfer t;
    t.request = &request;
    t.check = check;
    t.sink = sink;
    t.easy = e;

    curl_slist *headers = nullptr;
    for (const auto &h : request.headers) headers = curl_slist_append(headers, h.c_str());
    // libcurl sends "Expect: 100-continue" with bodies over 1 KiB and waits for the server's 100
    // before the body: one more round trip per SOAP call or upload. Our bodies are in memory and
    // the servers we talk to read them, so send them at once (an empty header removes curl's).
    const bool caller_expects = std::any_of(request.headers.begin(), request.headers.end(),
                                            [](const std::string &h) { return iequals_prefix(h, "expect:"); });
    if (!request.body.empty() && !caller_expects) headers = curl_slist_append(headers, "Expect:");
    std::unique_ptr<curl_slist, void (*)(curl_slist *)> header_guard(headers, curl_slist_free_all);
    const std::string range = request.range_from > 0 ? fmt::format("{}-", request.range_from) : std::string();

    curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(e, CURLOPT_SHARE, shared_->share);
    curl_easy_setopt(e, CURLOPT_COOKIEFILE, "");  // cookie engine on, nothing read from disk
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "libhypersdk");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.connect_timeout.count()));
    if (options_.request_timeout.count() > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT, static_cast<long>(options_.request_timeout.count()));
    if (options_.stall_timeout.count() > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.stall_timeout.count()));
    }
    if (!range.empty()) curl_easy_setopt(e, CURLOPT_RANGE, range.c_str());
    // Streamed bodies (disk downloads) are read in large pieces: fewer reads and fewer sink calls
    // for plain HTTP (a TLS read still ends at a 16 KiB record).
    if (sink != nullptr) curl_easy_setopt(e, CURLOPT_BUFFERSIZE, static_cast<long>(stream_buffer_bytes));
    if (request.method == "GET") {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (request.method == "POST" || request.method == "PUT") {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
        if (request.method == "PUT") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (request.method == "HEAD") {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);  // a HEAD answer has headers only: do not wait for a body
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
    if (options_.tls.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (!thumbprint_.empty()) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, &thumbprint_);
        // A session cached from a handshake checked differently must not skip our check.
        curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    } else {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (!options_.tls.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.tls.ca_file.c_str());
    }

    // The multi loop wakes at least every 100 ms, so a cancel stops the transfer promptly even
    // when no byte is moving.
    curl_multi_add_handle(multi, e);
    CURLcode result = CURLE_OK;
    bool cancelled = false;
    for (;;) {
        int running = 0;
        const CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            curl_multi_remove_handle(multi, e);
            return fail(Errc::network_error, fmt::format("{} {}: {}", request.method, redact_url(request.url), curl_multi_strerror(mc)));
        }
        int queued = 0;
        while (CURLMsg *msg = curl_multi_info_read(multi, &queued))
            if (msg->msg == CURLMSG_DONE) result = msg->data.result;
        if (running == 0) break;
        if (options_.cancel.is_cancelled()) {
            cancelled = true;
            break;
        }
        curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
    curl_multi_remove_handle(multi, e);
    if (cancelled) return fail(Errc::cancelled, "operation cancelled");

    if (result != CURLE_OK) {
        if (t.stop) return fail(*t.stop);
        if (options_.cancel.is_cancelled()) return fail(Errc::cancelled, "operation cancelled");
        std::string what = curl_easy_strerror(result);
        if (result == CURLE_PEER_FAILED_VERIFICATION && !thumbprint_.empty())
            what = "the server certificate does not match the pinned SHA-256 thumbprint";
        else if (curl_errc(result) == Errc::tls_error && !thumbprint_.empty())
            what += " (is the pinned thumbprint right?)";
        return fail(curl_errc(result), fmt::format("{} {}: {}", request.method, redact_url(request.url), what));
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t.response.status);
    if (!t.headers_done && check != nullptr && *check) HSDK_TRYV((*check)(t.response));
    return std::move(t.response);
}

std::string percent_encode(std::string_view s, bool keep_slash) {
    std::string out;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/'))
            out += c;
        else
            out += fmt::format("%{:02X}", u);
    }
    return out;
}

namespace {
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::string percent_decode(std::string_view s, bool plus_as_space) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else if (plus_as_space && s[i] == '+') {
            out += ' ';
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string redact_url(std::string_view url) {
    std::string u(url.substr(0, url.find_first_of("?#")));
    const auto scheme = u.find("://");
    if (scheme != std::string::npos) {
        const auto host_start = scheme + 3;
        const auto path_start = u.find('/', host_start);
        const auto at = u.rfind('@', path_start == std::string::npos ? u.size() : path_start);
        if (at != std::string::npos && at > host_start) u.erase(host_start, at + 1 - host_start);
    }
    // NFC paths carry a lease ticket: keep only the file name.
    if (const auto nfc = u.find("/nfc/"); nfc != std::string::npos) {
        const auto last = u.rfind('/');
        if (last > nfc + 4) u = u.substr(0, nfc + 5) + "..." + u.substr(last);
    }
    return u;
}

Error status_error(long status, std::string_view method, std::string_view url) {
    return Error{Errc::remote_error, fmt::format("HTTP {} from {} {}", status, method, redact_url(url))};
}

bool is_transient(const Error &error) {
    if (error.code == Errc::network_error || error.code == Errc::timeout) return true;
    return error.code == Errc::remote_error && error.message.rfind("HTTP 5", 0) == 0;
}

Result<void> backoff_sleep(const RetryPolicy &policy, unsigned attempt, const CancelToken &cancel) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const auto initial = std::max<std::int64_t>(1, policy.initial_delay.count());
    const auto cap = std::max<std::int64_t>(initial, policy.max_delay.count());
    std::int64_t delay = initial;
    for (unsigned i = 1; i < attempt && delay < cap; ++i) delay *= 2;
    delay = std::min(delay, cap);
    const std::int64_t wait = std::uniform_int_distribution<std::int64_t>(delay / 2, delay)(rng);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait);
    while (std::chrono::steady_clock::now() < until) {
        HSDK_TRYV(cancel.check());
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    }
    return cancel.check();
}

}  // namespace hypersdk::io::http
