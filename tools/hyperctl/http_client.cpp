#include "http_client.hpp"

#include <curl/curl.h>

#include <cstdlib>
#include <memory>
#include <utility>

namespace hyperctl {

namespace {

// curl_global_init once for the process, before the first handle.
struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
    ~CurlGlobal() { curl_global_cleanup(); }
    CurlGlobal(const CurlGlobal &) = delete;
    CurlGlobal &operator=(const CurlGlobal &) = delete;
};

void ensure_curl() {
    static CurlGlobal global;
}

struct EasyDeleter {
    void operator()(CURL *handle) const { curl_easy_cleanup(handle); }
};
struct SlistDeleter {
    void operator()(curl_slist *list) const { curl_slist_free_all(list); }
};

std::size_t collect(char *data, std::size_t size, std::size_t count, void *user) {
    static_cast<std::string *>(user)->append(data, size * count);
    return size * count;
}

// Go's HTTP client never sends loopback requests through a proxy; libcurl does unless NO_PROXY
// says otherwise. Keep the user's NO_PROXY and add the loopback names to it.
std::string no_proxy_list() {
    std::string list = "localhost,127.0.0.1,::1";
    for (const char *name : {"NO_PROXY", "no_proxy"}) {
        if (const char *value = std::getenv(name); value && *value) {
            list += ",";
            list += value;
            break;
        }
    }
    return list;
}

}  // namespace

DaemonClient::DaemonClient(const std::string &base_url, std::string api_key) : api_key_(std::move(api_key)) {
    base_url_ = base_url.find("://") == std::string::npos ? "http://" + base_url : base_url;
    while (base_url_.size() > 1 && base_url_.back() == '/') base_url_.pop_back();
}

HttpResponse DaemonClient::get(const std::string &path, long timeout_seconds) const {
    return perform(path, nullptr, nullptr, timeout_seconds);
}

HttpResponse DaemonClient::post(const std::string &path, const std::string &content_type, const std::string &body,
                                long timeout_seconds) const {
    return perform(path, &content_type, &body, timeout_seconds);
}

HttpResponse DaemonClient::perform(const std::string &path, const std::string *content_type, const std::string *body,
                                   long timeout_seconds) const {
    ensure_curl();
    std::unique_ptr<CURL, EasyDeleter> curl(curl_easy_init());
    if (!curl) throw TransportError("cannot reach hypervisord at " + base_url_ + ": libcurl failed to initialise");

    const std::string url = base_url_ + path;
    const std::string no_proxy = no_proxy_list();
    HttpResponse response;
    char error[CURL_ERROR_SIZE] = {};

    std::unique_ptr<curl_slist, SlistDeleter> headers;
    auto add_header = [&headers](const std::string &line) {
        curl_slist *grown = curl_slist_append(headers.get(), line.c_str());
        if (grown) {
            (void)headers.release();
            headers.reset(grown);
        }
    };
    add_header("Accept: application/json");
    if (!api_key_.empty()) add_header("X-API-Key: " + api_key_);
    if (content_type) add_header("Content-Type: " + *content_type);
    add_header("Expect:");  // no 100-continue round trip for larger job files

    CURL *h = curl.get();
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_seconds);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, no_proxy.c_str());
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hyperctl");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    if (body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }

    const CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        std::string detail = error[0] ? error : curl_easy_strerror(rc);
        while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
            detail += " (is hypervisord running there? -daemon or HYPERVISORD_URL name another address)";
        throw TransportError("cannot reach hypervisord at " + base_url_ + ": " + detail);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
    return response;
}

}  // namespace hyperctl
