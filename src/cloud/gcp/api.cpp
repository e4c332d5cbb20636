#include "cloud/gcp/api.hpp"

#include "io/http_source.hpp"
#include "core/json_fields.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

namespace hypersdk::cloud::gcp {
namespace {

namespace http = io::http;
using json = nlohmann::json;

using json_fields::str;

std::string last_segment(const std::string &url) { return url.substr(url.rfind('/') + 1); }

std::string with_query(std::string url, const std::string &name, const std::string &value) {
    url += (url.find('?') == std::string::npos ? "?" : "&") + name + "=" + http::percent_encode(value, false);
    return url;
}

}  // namespace

std::string storage_endpoint(const std::string &given, bool *emulated) {
    if (emulated) *emulated = false;
    if (!given.empty()) return given;
    const char *host = std::getenv("STORAGE_EMULATOR_HOST");
    if (host != nullptr && *host != '\0') {
        if (emulated) *emulated = true;
        std::string h = host;
        while (!h.empty() && h.back() == '/') h.pop_back();
        return h.rfind("http://", 0) == 0 || h.rfind("https://", 0) == 0 ? h : "http://" + h;
    }
    return Endpoints{}.storage;
}

Api::Api(std::shared_ptr<TokenSource> tokens, ApiSettings settings, std::string project)
    : tokens_(std::move(tokens)), settings_(std::move(settings)), project_(std::move(project)) {
    auto t = tokens_;
    rest_ = std::make_shared<RestClient>(settings_.rest, [t](bool renew) { return t->headers(renew); }, google_error);
}

std::unique_ptr<Api> Api::with_cancel(CancelToken cancel) const {
    ApiSettings s = settings_;
    s.rest.cancel = std::move(cancel);
    return std::make_unique<Api>(tokens_, s, project_);
}

std::string Api::compute_url(const std::string &path) const {
    if (path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0) return path;
    return fmt::format("{}/compute/v1/projects/{}{}", settings_.endpoints.compute, http::percent_encode(project_, false), path);
}

Result<json> Api::compute(const std::string &method, const std::string &path, const json &body, const std::string &what) {
    return rest_->call(method, compute_url(path), body, what);
}

Result<std::vector<json>> Api::compute_list(const std::string &path, const std::string &key, const std::string &what) {
    std::vector<json> out;
    std::string token;
    for (int page = 0; page < 100000; ++page) {
        std::string url = with_query(compute_url(path), "maxResults", "500");
        if (!token.empty()) url = with_query(url, "pageToken", token);
        HSDK_TRY(auto answer, rest_->call("GET", url, nullptr, what));
        if (answer.is_object() && answer.contains("items")) {
            const json &items = answer["items"];
            if (items.is_array()) {
                for (const auto &i : items) out.push_back(i);
            } else if (items.is_object()) {  // aggregated: {"zones/z": {"instances": [...]}}
                for (const auto &[scope, content] : items.items())
                    if (content.is_object() && content.contains(key) && content[key].is_array())
                        for (const auto &i : content[key]) out.push_back(i);
            }
        }
        token = str(answer, "nextPageToken");
        if (token.empty()) return out;
    }
    return fail(Errc::remote_error, what + ": the list does not end");
}

Result<json> Api::wait_operation(const json &operation, const std::string &what, const std::function<void(const std::string &)> &phase) {
    json op = operation;
    const auto deadline = std::chrono::steady_clock::now() + settings_.operation_timeout;
    auto interval = std::min(settings_.poll_interval, std::chrono::milliseconds(500));
    while (str(op, "status") != "DONE") {
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::timeout, fmt::format("{}: operation {} not done after {} s", what, str(op, "name"), settings_.operation_timeout.count()));
        HSDK_TRYV(sleep_for(interval, settings_.rest.cancel));
        interval = std::min(interval * 2, std::max(settings_.poll_interval, std::chrono::milliseconds(500)));
        const std::string name = str(op, "name");
        if (name.empty()) return fail(Errc::remote_error, what + ": the operation has no name");
        std::string path;
        if (auto zone = str(op, "zone"); !zone.empty()) path = fmt::format("/zones/{}/operations/{}", last_segment(zone), name);
        else if (auto region = str(op, "region"); !region.empty()) path = fmt::format("/regions/{}/operations/{}", last_segment(region), name);
        else path = "/global/operations/" + name;
        HSDK_TRY(op, compute("GET", path, nullptr, what + " (operation status)"));
        if (phase && op.contains("progress")) phase(fmt::format("{} ({}%)", what, op["progress"].is_number() ? op["progress"].get<int>() : 0));
    }
    if (op.contains("error") && op["error"].is_object() && op["error"].contains("errors") && op["error"]["errors"].is_array() &&
        !op["error"]["errors"].empty()) {
        std::string text;
        for (const auto &e : op["error"]["errors"]) text += fmt::format("{}{}: {}", text.empty() ? "" : "; ", str(e, "code"), str(e, "message"));
        const std::string first = str(op["error"]["errors"][0], "code");
        const Errc code = first == "RESOURCE_NOT_FOUND" ? Errc::not_found
                          : first == "QUOTA_EXCEEDED"   ? Errc::no_space
                          : first == "RESOURCE_ALREADY_EXISTS" ? Errc::conflict
                                                                : Errc::remote_error;
        return fail(code, fmt::format("{}: the operation failed: {}", what, text));
    }
    return op;
}

Result<json> Api::cloudbuild(const std::string &method, const std::string &path, const json &body, const std::string &what) {
    return rest_->call(method, fmt::format("{}/v1/projects/{}{}", settings_.endpoints.cloudbuild, http::percent_encode(project_, false), path),
                       body, what);
}

Result<json> Api::wait_build(const std::string &id, const std::string &what, std::chrono::seconds timeout,
                             const std::function<void(const std::string &)> &phase) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto interval = std::min(settings_.poll_interval, std::chrono::milliseconds(500));
    std::string last;
    for (;;) {
        HSDK_TRY(auto build, cloudbuild("GET", "/builds/" + http::percent_encode(id, false), nullptr, what + " (build status)"));
        const std::string status = str(build, "status");
        if (status == "SUCCESS") return build;
        if (status == "FAILURE" || status == "INTERNAL_ERROR" || status == "TIMEOUT" || status == "CANCELLED" || status == "EXPIRED") {
            const std::string detail = str(build, "statusDetail");
            return fail(status == "TIMEOUT" ? Errc::timeout : status == "CANCELLED" ? Errc::cancelled : Errc::remote_error,
                        fmt::format("{}: Cloud Build {} ended {}{}", what, id, status, detail.empty() ? "" : ": " + detail));
        }
        if (status != last && phase) phase(fmt::format("{}: build {} {}", what, id, status));
        last = status;
        if (std::chrono::steady_clock::now() >= deadline)
            return fail(Errc::timeout, fmt::format("{}: Cloud Build {} still {} after {} s", what, id, status, timeout.count()));
        HSDK_TRYV(sleep_for(interval, settings_.rest.cancel));
        interval = std::min(interval * 2, std::max(settings_.poll_interval, std::chrono::milliseconds(500)));
    }
}

std::string Api::object_url(const std::string &bucket, const std::string &object, bool media) const {
    std::string url = fmt::format("{}/storage/v1/b/{}/o/{}", settings_.endpoints.storage, http::percent_encode(bucket, false),
                                  http::percent_encode(object, false));
    return media ? url + "?alt=media" : url;
}

Result<json> Api::object_metadata(const std::string &bucket, const std::string &object) {
    return rest_->call("GET", object_url(bucket, object, false), nullptr, fmt::format("GCS object gs://{}/{}", bucket, object));
}

Result<void> Api::delete_object(const std::string &bucket, const std::string &object) {
    HSDK_TRY(auto answer, rest_->send("DELETE", object_url(bucket, object, false), nullptr, fmt::format("GCS delete gs://{}/{}", bucket, object)));
    (void)answer;
    return success();
}

io::StreamReader Api::object_reader(const std::string &bucket, const std::string &object) {
    return rest_->stream_reader(object_url(bucket, object, true), fmt::format("GCS read gs://{}/{}", bucket, object));
}

Result<HttpSourceOptions> Api::source_options(HttpSourceOptions base) {
    HSDK_TRY(auto headers, rest_->auth_headers(false));
    for (auto &h : headers) base.headers.push_back(std::move(h));
    if (tokens_->credentials().kind != Credentials::Kind::anonymous && tokens_->credentials().kind != Credentials::Kind::access_token) {
        auto t = tokens_;
        base.refresh_headers = [t]() { return t->headers(true); };
    }
    // A Google access token over plain http is what the emulator gets; Google itself is https.
    if (settings_.endpoints.storage.rfind("http://", 0) == 0) base.insecure = true;
    return base;
}

Result<std::pair<std::string, std::string>> parse_gs_location(std::string_view location) {
    if (location.rfind("gs://", 0) != 0) return fail(Errc::invalid_argument, fmt::format("'{}' is not a gs:// location", location));
    const std::string_view rest = location.substr(5);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 >= rest.size())
        return fail(Errc::invalid_argument, fmt::format("'{}' is not gs://BUCKET/OBJECT", location));
    return std::pair{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
}

Result<std::shared_ptr<ByteSource>> open_gcs_object(const std::shared_ptr<Api> &api, const std::string &bucket, const std::string &object,
                                                    const HttpSourceOptions &options) {
    const std::string name = fmt::format("gs://{}/{}", bucket, object);
    if (io::is_tar_stream_name(object)) {
        io::TarStreamOptions t;
        t.name = name;
        t.cancel = options.cancel;
        return io::open_tar_stream_source(api->object_reader(bucket, object), t);
    }
    HSDK_TRY(auto o, api->source_options(options));
    return io::open_http_source(api->object_url(bucket, object, true), o);
}

Result<std::shared_ptr<ByteSource>> open_gs_location(std::string_view location, const HttpSourceOptions &options) {
    HSDK_TRY(auto parts, parse_gs_location(location));
    bool emulated = false;
    ApiSettings s;
    s.endpoints.storage = storage_endpoint(options.gcp_storage_endpoint, &emulated);
    s.rest.insecure = options.insecure;
    s.rest.ca_file = options.ca_file;
    s.rest.max_attempts = std::max(1u, options.max_attempts);
    s.rest.timeout = std::chrono::seconds(options.timeout_seconds);
    s.rest.cancel = options.cancel;
    CredentialsInput in;
    in.credentials_file = options.gcp_credentials_file;
    in.token_uri = options.gcp_token_uri;
    in.allow_anonymous = emulated || s.endpoints.storage.rfind("http://", 0) == 0;
    HSDK_TRY(auto credentials, resolve_credentials(in));
    auto api = std::make_shared<Api>(std::make_shared<TokenSource>(std::move(credentials), s.rest), s, std::string());
    return open_gcs_object(api, parts.first, parts.second, options);
}

}  // namespace hypersdk::cloud::gcp
