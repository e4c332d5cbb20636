// A logged-in vSphere session: service content, Login/Logout (the session cookie lives in the
// HTTP client's jar) and method invocation with fault mapping and retries.
#pragma once

#include "io/http.hpp"
#include "providers/vsphere/soap.hpp"

#include <hypersdk/vsphere.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace hypersdk::vsphere {

struct ServiceContent {
    MoRef root_folder, property_collector, view_manager, search_index, session_manager, ovf_manager, file_manager;
    std::string api_type;  // VirtualCenter or HostAgent
    std::string api_version;
    std::string full_name;
};

// What a call may do when it fails transiently.
enum class CallKind {
    query,    // reads only: retried on transient failures
    action,   // changes state: sent once (a retry could repeat it)
    cleanup,  // best-effort clean-up: runs even after a cancel, retried
};

class Session {
public:
    // RetrieveServiceContent, then SessionManager.Login.
    static Result<std::unique_ptr<Session>> open(const ConnectionOptions &options);
    ~Session();  // logs out (best effort) unless logout() ran
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    // Sends the call and returns the method's response element (<XxxResponse>).
    Result<xml::Element> invoke(const SoapCall &call, CallKind kind = CallKind::query);
    Result<void> logout();
    // Logs in again (after the server ended the session: NotAuthenticated). invoke() does it by
    // itself once per call; datastore readers call it when a download answers 401.
    Result<void> relogin();
    // The session cookie as a "Cookie: ..." header for datastore downloads by other clients.
    [[nodiscard]] std::string cookie_header() const { return http_->cookie_header(); }

    [[nodiscard]] const ServiceContent &content() const noexcept { return content_; }
    [[nodiscard]] const ConnectionOptions &options() const noexcept { return options_; }
    [[nodiscard]] const std::string &server() const noexcept { return server_; }  // https://host:port
    [[nodiscard]] const std::string &host() const noexcept { return host_; }      // host:port
    [[nodiscard]] io::http::Client &http() noexcept { return *http_; }
    // Same cookies, never cancelled: for clean-up after a cancel.
    [[nodiscard]] io::http::Client &cleanup_http() noexcept { return *cleanup_http_; }
    [[nodiscard]] io::http::RetryPolicy retry_policy() const;

private:
    Session() = default;
    Result<xml::Element> invoke_once(io::http::Client &client, const std::string &envelope, const std::string &method);
    Result<void> login();

    ConnectionOptions options_;
    std::string server_, host_, sdk_url_;
    std::unique_ptr<io::http::Client> http_, cleanup_http_;
    ServiceContent content_;
    bool logged_in_ = false;
    std::mutex login_mutex_;
    std::atomic<unsigned> logins_{0};  // how many times it logged in: a re-login by another thread is not repeated
};

// https://host[:port]/sdk from what a user typed ("host", "https://host", "https://host/sdk").
Result<std::string> normalize_sdk_url(const std::string &url);

}  // namespace hypersdk::vsphere
