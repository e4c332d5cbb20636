// AWS Signature Version 4: the canonical request, the string to sign and the derived signing key,
// as AWS's "Create a signed AWS API request" describes them. The secret never leaves this file:
// only the signature derived from it goes on the wire.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hypersdk::cloud::aws {

struct Credentials {
    std::string access_key_id;
    std::string secret_access_key;  // a secret: never logged, never in an error
    std::string session_token;      // temporary credentials only; a secret too
    [[nodiscard]] bool empty() const { return access_key_id.empty() || secret_access_key.empty(); }
};

struct SignRequest {
    std::string method;                                        // GET, POST, ...
    std::string url;                                           // scheme://host[:port]/path[?query]
    std::vector<std::pair<std::string, std::string>> headers;  // to be signed as well (content-type, range is not)
    std::string payload_sha256;                                // hex, or "UNSIGNED-PAYLOAD"
    std::string region;
    std::string service;  // signing name: ec2, ebs, s3
    std::chrono::system_clock::time_point time;
};

// The headers to add to the request: Authorization, X-Amz-Date, X-Amz-Content-Sha256 (s3 only, as
// S3 requires it) and X-Amz-Security-Token (temporary credentials), as "Name: value" lines.
std::vector<std::string> sign_v4(const SignRequest &request, const Credentials &credentials);

// The pieces, exposed for the test vectors.
std::string canonical_request(const SignRequest &request, std::string &signed_headers);
std::string amz_date(std::chrono::system_clock::time_point time);  // 20150830T123600Z
std::string hex_sha256(std::string_view data);
// RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ (and '/' when keep_slash).
std::string uri_encode(std::string_view s, bool keep_slash);

}  // namespace hypersdk::cloud::aws
