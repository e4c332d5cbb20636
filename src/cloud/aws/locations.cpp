#include "cloud/aws/locations.hpp"

#include "cloud/aws/ebs.hpp"
#include "io/http_source.hpp"

#include <fmt/format.h>

namespace hypersdk::cloud::aws {

Result<std::shared_ptr<Client>> source_client(const HttpSourceOptions &options) {
    ConfigInput in;
    in.profile = options.aws_profile;
    in.region = options.aws_region;
    in.endpoint_url = options.aws_endpoint_url;
    HSDK_TRY(auto config, resolve_config(in));
    ClientSettings s;
    s.insecure = options.insecure;
    s.ca_file = options.ca_file;
    s.cancel = options.cancel;
    s.timeout = std::chrono::seconds(std::max(1u, options.timeout_seconds));
    // Throttling is normal at AWS: more patience than for an http(s) URL's 5xx, unless told.
    s.max_attempts = options.aws_max_attempts != 0 ? options.aws_max_attempts : std::max(options.max_attempts, 1u) * 2;
    return std::make_shared<Client>(std::move(config), s);
}

Result<std::shared_ptr<ByteSource>> open_ebs_location(std::string_view location, const HttpSourceOptions &options) {
    HSDK_TRY(auto snapshot, ebs_snapshot_id(location));
    HSDK_TRY(auto client, source_client(options));
    EbsSourceOptions o;
    o.requests_in_flight = std::max(1u, options.block_requests);
    return open_ebs_snapshot(std::move(client), snapshot, o);
}

Result<std::string> s3_object_url(const Config &config, std::string_view location) {
    constexpr std::string_view scheme = "s3://";
    if (location.substr(0, scheme.size()) != scheme)
        return fail(Errc::invalid_argument, fmt::format("'{}' is not an s3://BUCKET/KEY location", location));
    const std::string_view rest = location.substr(scheme.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 >= rest.size())
        return fail(Errc::invalid_argument, fmt::format("'{}' does not name an object: s3://BUCKET/KEY", location));
    const std::string bucket(rest.substr(0, slash)), key(rest.substr(slash + 1));
    for (char c : bucket)
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
            return fail(Errc::invalid_argument, fmt::format("'{}' is not an S3 bucket name", bucket));
    if (config.custom_endpoint("s3")) return fmt::format("{}/{}/{}", config.endpoint("s3"), bucket, uri_encode(key, true));
    return fmt::format("https://{}.s3.{}.amazonaws.com/{}", bucket, config.region, uri_encode(key, true));
}

Result<std::shared_ptr<ByteSource>> open_s3_object(std::shared_ptr<Client> client, const std::string &bucket, const std::string &key,
                                                   const HttpSourceOptions &options) {
    HSDK_TRY(auto url, s3_object_url(client->config(), fmt::format("s3://{}/{}", bucket, key)));
    HttpSourceOptions o = options;
    o.headers.clear();  // the signature is the credential
    o.sign = [client](const std::string &method, const std::string &u, const std::vector<std::string> &) {
        return client->sign("s3", method, u);  // SigV4 for S3 leaves the Range unsigned
    };
    auto source = io::open_http_source(url, o);
    if (!source) return fail(source.error().with_context(fmt::format("s3://{}/{}", bucket, key)));
    return source;
}

Result<std::shared_ptr<ByteSource>> open_s3_location(std::string_view location, const HttpSourceOptions &options) {
    HSDK_TRY(auto client, source_client(options));
    HSDK_TRYV(s3_object_url(client->config(), location));
    const std::string_view rest = location.substr(5);
    const auto slash = rest.find('/');
    return open_s3_object(std::move(client), std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1)), options);
}

}  // namespace hypersdk::cloud::aws
