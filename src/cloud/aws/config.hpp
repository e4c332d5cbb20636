// Where AWS credentials, the region and the service endpoints come from, in the order the AWS SDKs
// use: what the caller gives, then the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL[_EC2|_EBS|_S3]), then the
// shared files' profile (AWS_PROFILE or "default"; ~/.aws/credentials and ~/.aws/config, or
// AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE).
#pragma once

#include "cloud/aws/sigv4.hpp"

#include <hypersdk/error.hpp>

#include <map>
#include <string>

namespace hypersdk::cloud::aws {

struct ConfigInput {
    std::string profile;       // empty: AWS_PROFILE, else "default"
    std::string region;        // empty: environment, then profile
    std::string endpoint_url;  // every service (--endpoint-url); empty: environment, then profile
    std::map<std::string, std::string> service_endpoints;  // "ec2" / "ebs" / "s3" -> URL
    Credentials credentials;   // explicit keys (the secret read by the caller from a file or variable)
};

struct Config {
    Credentials credentials;
    std::string region;
    std::string profile;       // the profile used, for messages
    std::string credentials_source;  // "options", "environment", "profile NAME (FILE)": for messages
    std::string endpoint_url;  // the override for every service, when any
    std::map<std::string, std::string> service_endpoints;

    // The endpoint of `service` (ec2, ebs, s3): its own override, the general one, or AWS's
    // https://SERVICE.REGION.amazonaws.com.
    [[nodiscard]] std::string endpoint(const std::string &service) const;
    // True when the endpoint is not AWS's own (path-style S3 addressing).
    [[nodiscard]] bool custom_endpoint(const std::string &service) const;
};

// Resolves everything; auth_failed naming where it looked when no credentials are found,
// invalid_argument for a region that is missing or malformed, a profile that does not exist.
Result<Config> resolve_config(const ConfigInput &input);

}  // namespace hypersdk::cloud::aws
