// ebs:// and s3:// locations as byte sources, for every image command: the AWS client built
// from the source options and the environment.
#pragma once

#include "cloud/aws/client.hpp"

#include <hypersdk/byte_source.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace hypersdk::cloud::aws {

// A client for sources: profile, region and endpoint from `options`, the rest from the
// environment; cancel, timeout and TLS settings from `options`.
Result<std::shared_ptr<Client>> source_client(const HttpSourceOptions &options);

Result<std::shared_ptr<ByteSource>> open_ebs_location(std::string_view location, const HttpSourceOptions &options);

// s3://bucket/key -> the object's URL: path-style on a custom endpoint, virtual-hosted on AWS.
Result<std::string> s3_object_url(const Config &config, std::string_view location);
Result<std::shared_ptr<ByteSource>> open_s3_location(std::string_view location, const HttpSourceOptions &options);
// An object of a bucket through a given client (the provider's export-task result).
Result<std::shared_ptr<ByteSource>> open_s3_object(std::shared_ptr<Client> client, const std::string &bucket,
                                                   const std::string &key, const HttpSourceOptions &options);

}  // namespace hypersdk::cloud::aws
