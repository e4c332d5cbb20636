// The HTTP side of hyperctl: one request to hypervisord at a time, over libcurl.
#pragma once

#include <stdexcept>
#include <string>

namespace hyperctl {

// The daemon could not be reached or did not answer (refused, unresolvable, timed out, TLS).
class TransportError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct HttpResponse {
    long status = 0;
    std::string body;
};

class DaemonClient {
public:
    // `base_url` as given by -daemon / HYPERVISORD_URL ("http://" is assumed without a scheme);
    // `api_key`, when not empty, travels as X-API-Key on every request.
    DaemonClient(const std::string &base_url, std::string api_key);

    HttpResponse get(const std::string &path, long timeout_seconds = 30) const;
    HttpResponse post(const std::string &path, const std::string &content_type, const std::string &body,
                      long timeout_seconds = 30) const;

    // The base URL requests go to, without a trailing slash.
    const std::string &url() const { return base_url_; }
    bool has_api_key() const { return !api_key_.empty(); }

private:
    HttpResponse perform(const std::string &path, const std::string *content_type, const std::string *body,
                         long timeout_seconds) const;

    std::string base_url_;
    std::string api_key_;
};

}  // namespace hyperctl
