// The AWS pieces that need no server: SigV4 against AWS's published example and against vectors
// computed independently with botocore's signer, credential/region/endpoint resolution, AWS's
// error answers, instance sizes, locations and the adaptive rate limit.
#include "cloud/aws/client.hpp"
#include "cloud/aws/config.hpp"
#include "cloud/aws/ebs.hpp"
#include "cloud/aws/ec2.hpp"
#include "cloud/aws/locations.hpp"
#include "cloud/aws/sigv4.hpp"
#include "cloud/token_bucket.hpp"
#include "scratch.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <string>

using namespace hypersdk;
using namespace hypersdk::cloud::aws;

namespace {

std::chrono::system_clock::time_point at_20150830_123600() {
    std::tm tm{};
    tm.tm_year = 2015 - 1900;
    tm.tm_mon = 7;
    tm.tm_mday = 30;
    tm.tm_hour = 12;
    tm.tm_min = 36;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

const Credentials example{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

std::string header(const std::vector<std::string> &headers, std::string_view name) {
    for (const auto &h : headers)
        if (h.rfind(std::string(name) + ": ", 0) == 0) return h.substr(name.size() + 2);
    return {};
}

// Sets environment variables for one test and puts the old values back.
class Env {
public:
    Env(std::initializer_list<std::pair<const char *, const char *>> vars) {
        for (const char *name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                                 "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_EBS", "AWS_ENDPOINT_URL_S3",
                                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "HOME"}) {
            const char *v = std::getenv(name);
            saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
            ::unsetenv(name);
        }
        ::setenv("HOME", "/nonexistent-home-for-tests", 1);
        for (const auto &[k, v] : vars) ::setenv(k, v, 1);
    }
    ~Env() {
        for (const auto &[k, v] : saved_) {
            if (v) ::setenv(k.c_str(), v->c_str(), 1);
            else ::unsetenv(k.c_str());
        }
    }

private:
    std::map<std::string, std::optional<std::string>> saved_;
};

io::http::Response answer(long status, std::string body, std::vector<std::pair<std::string, std::string>> headers = {}) {
    io::http::Response r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}

}  // namespace

TEST_CASE("SigV4 reproduces AWS's published example (IAM ListUsers, 2015-08-30)") {
    SignRequest r;
    r.method = "GET";
    r.url = "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08";
    r.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    r.payload_sha256 = hex_sha256("");
    r.region = "us-east-1";
    r.service = "iam";
    r.time = at_20150830_123600();
    const auto headers = sign_v4(r, example);
    CHECK(header(headers, "X-Amz-Date") == "20150830T123600Z");
    CHECK(header(headers, "Authorization") ==
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
          "SignedHeaders=content-type;host;x-amz-date, "
          "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
    // The secret never goes on the wire.
    for (const auto &h : headers) CHECK(h.find(example.secret_access_key) == std::string::npos);
}

TEST_CASE("SigV4 of an EBS direct call with a port and an encoded query (vector from botocore 1.43's SigV4Auth)") {
    SignRequest r;
    r.method = "GET";
    r.url = "http://127.0.0.1:5000/snapshots/snap-1/blocks/7?blockToken=a%2Bb%3D&maxResults=100";
    r.payload_sha256 = hex_sha256("");
    r.region = "us-east-1";
    r.service = "ebs";
    r.time = at_20150830_123600();
    std::string signed_headers;
    SignRequest with_date = r;
    with_date.headers.emplace_back("x-amz-date", "20150830T123600Z");
    CHECK(canonical_request(with_date, signed_headers) ==
          "GET\n/snapshots/snap-1/blocks/7\nblockToken=a%2Bb%3D&maxResults=100\nhost:127.0.0.1:5000\nx-amz-date:20150830T123600Z\n\n"
          "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(header(sign_v4(r, example), "Authorization").find("Signature=749aea0d330b6af38958e92dffca36c1e1a5ff33474c8de5a42f6e0003ca2c25") !=
          std::string::npos);
}

TEST_CASE("SigV4 for S3 sends the payload hash header, and a session token when there is one") {
    SignRequest r;
    r.method = "GET";
    r.url = "https://bucket.s3.eu-west-1.amazonaws.com/a%20b.vmdk";
    r.payload_sha256 = "UNSIGNED-PAYLOAD";
    r.region = "eu-west-1";
    r.service = "s3";
    r.time = at_20150830_123600();
    Credentials temporary = example;
    temporary.session_token = "token-123";
    const auto headers = sign_v4(r, temporary);
    CHECK(header(headers, "X-Amz-Content-Sha256") == "UNSIGNED-PAYLOAD");
    CHECK(header(headers, "X-Amz-Security-Token") == "token-123");
    CHECK(header(headers, "Authorization").find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") !=
          std::string::npos);
    std::string signed_headers;
    // S3 paths are encoded once: the space stays %20, not %2520.
    CHECK(canonical_request(r, signed_headers).find("\n/a%20b.vmdk\n") != std::string::npos);
}

TEST_CASE("Credentials, region and endpoints resolve as the AWS SDKs do") {
    const std::string creds = test::work("aws-test-credentials"), config = test::work("aws-test-config");
    std::ofstream(creds) << "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = default-secret\n\n"
                            "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = work-secret\naws_session_token = work-token\n";
    std::ofstream(config) << "[default]\nregion = eu-west-1\n\n[profile work]\nregion = ap-south-1\nendpoint_url = http://127.0.0.1:9\n"
                             "s3 =\n  addressing_style = path\n";

    SUBCASE("the environment wins over the default profile") {
        Env env{{"AWS_ACCESS_KEY_ID", "ENVKEY"}, {"AWS_SECRET_ACCESS_KEY", "env-secret"}, {"AWS_DEFAULT_REGION", "us-west-2"},
                {"AWS_SHARED_CREDENTIALS_FILE", creds.c_str()}, {"AWS_CONFIG_FILE", config.c_str()}};
        auto c = resolve_config({});
        REQUIRE(c);
        CHECK(c.value().credentials.access_key_id == "ENVKEY");
        CHECK(c.value().credentials_source == "environment");
        CHECK(c.value().region == "us-west-2");
        CHECK(c.value().endpoint("ebs") == "https://ebs.us-west-2.amazonaws.com");
        CHECK_FALSE(c.value().custom_endpoint("s3"));
    }
    SUBCASE("a named profile: its keys, token, region and endpoint") {
        Env env{{"AWS_PROFILE", "work"}, {"AWS_SHARED_CREDENTIALS_FILE", creds.c_str()}, {"AWS_CONFIG_FILE", config.c_str()}};
        auto c = resolve_config({});
        REQUIRE(c);
        CHECK(c.value().credentials.access_key_id == "WORKKEY");
        CHECK(c.value().credentials.session_token == "work-token");
        CHECK(c.value().region == "ap-south-1");
        CHECK(c.value().endpoint("ec2") == "http://127.0.0.1:9");
    }
    SUBCASE("per-service endpoint variables beat the general one; options beat both") {
        Env env{{"AWS_ACCESS_KEY_ID", "K"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_REGION", "us-east-1"},
                {"AWS_ENDPOINT_URL", "http://127.0.0.1:1/"}, {"AWS_ENDPOINT_URL_EBS", "http://127.0.0.1:2"}};
        auto c = resolve_config({});
        REQUIRE(c);
        CHECK(c.value().endpoint("ec2") == "http://127.0.0.1:1");
        CHECK(c.value().endpoint("ebs") == "http://127.0.0.1:2");
        ConfigInput in;
        in.endpoint_url = "http://127.0.0.1:3";
        in.region = "eu-central-1";
        auto o = resolve_config(in);
        REQUIRE(o);
        CHECK(o.value().endpoint("s3") == "http://127.0.0.1:3");
        CHECK(o.value().region == "eu-central-1");
    }
    SUBCASE("nothing found, an unknown profile, a bad region: clear errors without secrets") {
        Env env{{"AWS_REGION", "us-east-1"}};
        auto none = resolve_config({});
        REQUIRE_FALSE(none);
        CHECK(none.error().code == Errc::auth_failed);
        CHECK(none.error().message.find("AWS_ACCESS_KEY_ID") != std::string::npos);
        ConfigInput in;
        in.profile = "missing";
        auto missing = resolve_config(in);
        REQUIRE_FALSE(missing);
        CHECK(missing.error().code == Errc::invalid_argument);
        Env env2{{"AWS_ACCESS_KEY_ID", "K"}, {"AWS_SECRET_ACCESS_KEY", "S"}, {"AWS_REGION", "Not A Region"}};
        auto bad = resolve_config({});
        REQUIRE_FALSE(bad);
        CHECK(bad.error().code == Errc::invalid_argument);
    }
}

TEST_CASE("AWS error answers become error codes; only throttling and 5xx are retried") {
    bool retry = false, throttled = false;
    const auto ec2_auth = parse_fault(answer(401, "<?xml version=\"1.0\"?><Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was "
                                                  "not able to validate the provided access credentials</Message></Error></Errors>"
                                                  "<RequestID>1</RequestID></Response>"));
    CHECK(ec2_auth.code == "AuthFailure");
    CHECK(fault_error(ec2_auth, "EC2 DescribeInstances", retry, throttled).code == Errc::auth_failed);
    CHECK_FALSE(retry);

    const auto ebs_throttle = parse_fault(answer(400, R"({"Message":"Rate exceeded","Reason":"..."})",
                                                 {{"x-amzn-ErrorType", "RequestThrottledException:http://internal.amazon.com/coral/"}}));
    CHECK(ebs_throttle.code == "RequestThrottledException");
    const Error e = fault_error(ebs_throttle, "EBS GetSnapshotBlock snap-1 block 7", retry, throttled);
    CHECK(retry);
    CHECK(throttled);
    CHECK(e.message.find("snap-1 block 7") != std::string::npos);

    const auto denied = parse_fault(answer(403, R"({"message":"User is not authorized"})", {{"x-amzn-ErrorType", "AccessDeniedException"}}));
    CHECK(fault_error(denied, "x", retry, throttled).code == Errc::permission_denied);
    CHECK_FALSE(retry);
    const auto missing = parse_fault(answer(404, R"({"Message":"no snapshot"})", {{"x-amzn-ErrorType", "ResourceNotFoundException"}}));
    CHECK(fault_error(missing, "x", retry, throttled).code == Errc::not_found);
    CHECK(fault_error(parse_fault(answer(400, "<Response><Errors><Error><Code>InvalidSnapshot.NotFound</Code></Error></Errors></Response>")), "x",
                      retry, throttled)
              .code == Errc::not_found);
    CHECK(fault_error(parse_fault(answer(400, "", {{"x-amzn-ErrorType", "ValidationException"}})), "x", retry, throttled).code ==
          Errc::invalid_argument);
    CHECK_FALSE(retry);
    fault_error(parse_fault(answer(503, "<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>")), "x", retry, throttled);
    CHECK(retry);
    CHECK(throttled);
    fault_error(parse_fault(answer(500, "")), "x", retry, throttled);
    CHECK(retry);
    CHECK_FALSE(throttled);
}

TEST_CASE("Instance types map to vCPUs and memory without asking, for the common families") {
    CHECK(known_instance_size("t3.micro") == std::pair<int, std::uint64_t>{2, 1024});
    CHECK(known_instance_size("t2.micro") == std::pair<int, std::uint64_t>{1, 1024});
    CHECK(known_instance_size("m5.large") == std::pair<int, std::uint64_t>{2, 8192});
    CHECK(known_instance_size("c6i.4xlarge") == std::pair<int, std::uint64_t>{16, 32768});
    CHECK(known_instance_size("r7g.xlarge") == std::pair<int, std::uint64_t>{4, 32768});
    CHECK(known_instance_size("m6g.medium") == std::pair<int, std::uint64_t>{1, 4096});
    CHECK(known_instance_size("x2iedn.metal") == std::pair<int, std::uint64_t>{0, 0});
    CHECK(known_instance_size("nonsense") == std::pair<int, std::uint64_t>{0, 0});
}

TEST_CASE("ebs:// and s3:// locations") {
    CHECK(ebs_snapshot_id("ebs://snap-0123456789abcdef0").value() == "snap-0123456789abcdef0");
    CHECK_FALSE(ebs_snapshot_id("ebs://vol-1"));
    CHECK_FALSE(ebs_snapshot_id("ebs://snap-../x"));
    Config aws;
    aws.region = "eu-west-1";
    CHECK(s3_object_url(aws, "s3://my-bucket/dir/a b.vmdk").value() == "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b.vmdk");
    aws.endpoint_url = "http://127.0.0.1:9000";
    CHECK(s3_object_url(aws, "s3://my-bucket/k").value() == "http://127.0.0.1:9000/my-bucket/k");
    CHECK_FALSE(s3_object_url(aws, "s3://my-bucket"));
    CHECK_FALSE(s3_object_url(aws, "s3://Bad_Bucket/k"));
    CHECK(form_encode({{"Description", "a b:c"}}, true) == "Description=a+b%3Ac");
    CHECK(form_encode({{"Description", "a b"}}) == "Description=a%20b");
}

TEST_CASE("The token bucket halves its rate on throttling and creeps back") {
    cloud::TokenBucket bucket(1000, 100);
    bucket.throttled();
    CHECK(bucket.rate() == doctest::Approx(500));
    bucket.throttled();
    CHECK(bucket.rate() == doctest::Approx(250));
    for (int i = 0; i < 100; ++i) bucket.succeeded();
    CHECK(bucket.rate() == doctest::Approx(750));
    for (int i = 0; i < 1000; ++i) bucket.succeeded();
    CHECK(bucket.rate() == doctest::Approx(1000));
    for (int i = 0; i < 20; ++i) bucket.throttled();
    CHECK(bucket.rate() == doctest::Approx(1000.0 / 64));  // never below 1/64 of the documented rate
    CancelToken cancel;
    CHECK(bucket.acquire(cancel));
}
