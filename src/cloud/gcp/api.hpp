// Google Cloud's REST APIs as the provider uses them: Compute Engine (paged lists, operations
// waited for), Cloud Build (the image-export build waited for, cancelled) and Cloud Storage
// (object metadata, deletion, objects streamed with resume or read by ranges).
#pragma once

#include "cloud/gcp/auth.hpp"
#include "cloud/rest.hpp"
#include "io/tar_stream_source.hpp"

#include <hypersdk/byte_source.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hypersdk::cloud::gcp {

struct Endpoints {
    std::string compute = "https://compute.googleapis.com";
    std::string storage = "https://storage.googleapis.com";
    std::string cloudbuild = "https://cloudbuild.googleapis.com";
};

// The storage endpoint: `given`, else STORAGE_EMULATOR_HOST (host:port means plain http, as in
// Google's client libraries), else Google's. `emulated` says whether the emulator variable chose it.
std::string storage_endpoint(const std::string &given, bool *emulated = nullptr);

struct ApiSettings {
    Endpoints endpoints;
    RestSettings rest;
    std::chrono::milliseconds poll_interval{2000};
    std::chrono::seconds operation_timeout{3600};
};

class Api {
public:
    Api(std::shared_ptr<TokenSource> tokens, ApiSettings settings, std::string project);

    [[nodiscard]] const std::string &project() const noexcept { return project_; }
    [[nodiscard]] const ApiSettings &settings() const noexcept { return settings_; }
    [[nodiscard]] const std::shared_ptr<TokenSource> &tokens() const noexcept { return tokens_; }
    // The same API with another cancel token (clean-up that must run after a cancel).
    [[nodiscard]] std::unique_ptr<Api> with_cancel(CancelToken cancel) const;

    // Compute Engine: `path` below /compute/v1/projects/{project} (or a full URL).
    Result<nlohmann::json> compute(const std::string &method, const std::string &path, const nlohmann::json &body, const std::string &what);
    // Every item of a list, following nextPageToken; aggregated lists ({"items": {scope: {key: [...]}}})
    // are flattened, taking `key` from each scope.
    Result<std::vector<nlohmann::json>> compute_list(const std::string &path, const std::string &key, const std::string &what);
    // Polls a Compute operation until DONE; its errors become an error naming `what`.
    Result<nlohmann::json> wait_operation(const nlohmann::json &operation, const std::string &what,
                                          const std::function<void(const std::string &)> &phase = {});

    // Cloud Build: `path` below /v1/projects/{project}.
    Result<nlohmann::json> cloudbuild(const std::string &method, const std::string &path, const nlohmann::json &body, const std::string &what);
    // Polls a build until it ends; SUCCESS returns it, other ends are errors with its statusDetail.
    Result<nlohmann::json> wait_build(const std::string &id, const std::string &what, std::chrono::seconds timeout,
                                      const std::function<void(const std::string &)> &phase = {});

    // Cloud Storage (JSON API).
    [[nodiscard]] std::string object_url(const std::string &bucket, const std::string &object, bool media) const;
    Result<nlohmann::json> object_metadata(const std::string &bucket, const std::string &object);
    Result<void> delete_object(const std::string &bucket, const std::string &object);
    // The object from an offset on, streamed; dropped transfers resume with a Range request, and
    // a server ignoring the Range (a gzip-encoded object) has its repeated bytes skipped.
    io::StreamReader object_reader(const std::string &bucket, const std::string &object);
    // Options for reading the object by ranges through the HTTP byte source.
    Result<HttpSourceOptions> source_options(HttpSourceOptions base);

private:
    std::string compute_url(const std::string &path) const;

    std::shared_ptr<TokenSource> tokens_;
    ApiSettings settings_;
    std::string project_;
    std::shared_ptr<RestClient> rest_;
};

// gs://bucket/object split; invalid_argument when it is not one.
Result<std::pair<std::string, std::string>> parse_gs_location(std::string_view location);

// gs://bucket/object as a byte source for image commands: a .tar.gz / .tgz / .tar (a Compute
// Engine image export) is read as a stream of its disk.raw, anything else by ranges. Credentials
// and endpoints from the environment (GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST, the
// metadata server) and from `options`.
Result<std::shared_ptr<ByteSource>> open_gs_location(std::string_view location, const HttpSourceOptions &options);
// An object through a given API (the provider's export result).
Result<std::shared_ptr<ByteSource>> open_gcs_object(const std::shared_ptr<Api> &api, const std::string &bucket, const std::string &object,
                                                    const HttpSourceOptions &options);

}  // namespace hypersdk::cloud::gcp
