// The flags that say which platform to talk to, shared by the commands that do: vSphere's
// connection flags, and --provider / --config for any provider.
#pragma once

#include "cli_support.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace hsdk {

struct ConnectionFlags {
    std::string url, username, password_env, password_file, ca_file, thumbprint;
    bool insecure = false;
    unsigned retries = 5;
    CLI::Option *retries_option = nullptr;  // given on the command line: counts for every provider

    // The request's "connection": the password is named (a variable, a file), never copied into it.
    nlohmann::json request() const {
        nlohmann::json c{{"max_attempts", retries}};
        if (!url.empty()) c["url"] = url;
        if (!username.empty()) c["username"] = username;
        if (insecure) c["insecure"] = true;
        if (!ca_file.empty()) c["ca_file"] = ca_file;
        if (!thumbprint.empty()) c["thumbprint"] = thumbprint;
        if (!password_env.empty()) c["password_env"] = password_env;
        else if (!password_file.empty()) c["password_file"] = password_file;
        return c;
    }
};

void add_connection_flags(CLI::App *app, ConnectionFlags &f);

// AWS's profile, region and endpoint, named as the AWS CLI names them: for --provider aws, and
// for ebs:// and s3:// images. Keys and secrets come only from the environment and ~/.aws.
struct AwsFlags {
    std::string profile, region, endpoint_url;
    unsigned block_requests = 0, max_attempts = 0;
    [[nodiscard]] bool empty() const {
        return profile.empty() && region.empty() && endpoint_url.empty() && block_requests == 0 && max_attempts == 0;
    }
    // {"profile", "region", "endpoint_url", "requests_in_flight"}: what was given.
    [[nodiscard]] nlohmann::json request() const {
        nlohmann::json j = nlohmann::json::object();
        if (!profile.empty()) j["profile"] = profile;
        if (!region.empty()) j["region"] = region;
        if (!endpoint_url.empty()) j["endpoint_url"] = endpoint_url;
        if (block_requests != 0) j["requests_in_flight"] = block_requests;
        if (max_attempts != 0) j["max_attempts"] = max_attempts;
        return j;
    }
};

// `what` says where they apply ("ebs:// and s3:// images", "--provider aws").
void add_aws_flags(CLI::App *app, AwsFlags &f, const char *what);

// --provider and its config: vSphere's from the connection flags (GOVC_* for what they leave out),
// any provider's from --config (JSON, @FILE or @-), whose keys win.
// Azure's endpoints, for --provider azure (sovereign clouds, proxies, tests); credentials come from
// AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET / AZURE_SUBSCRIPTION_ID or the config.
struct AzureFlags {
    std::string arm_endpoint, authority, subscription;
    [[nodiscard]] bool empty() const { return arm_endpoint.empty() && authority.empty() && subscription.empty(); }
    [[nodiscard]] nlohmann::json request() const {
        nlohmann::json j = nlohmann::json::object();
        if (!arm_endpoint.empty()) j["arm_endpoint"] = arm_endpoint;
        if (!authority.empty()) j["authority"] = authority;
        if (!subscription.empty()) j["subscription_id"] = subscription;
        return j;
    }
};

void add_azure_flags(CLI::App *app, AzureFlags &f);

// Google Cloud's project, zone, bucket and endpoints, for --provider gcp; credentials come from
// GOOGLE_APPLICATION_CREDENTIALS, the metadata server or the config.
struct GcpFlags {
    std::string project, zone, bucket, token_uri, compute_endpoint, storage_endpoint;
    [[nodiscard]] bool empty() const {
        return project.empty() && zone.empty() && bucket.empty() && token_uri.empty() && compute_endpoint.empty() && storage_endpoint.empty();
    }
    [[nodiscard]] nlohmann::json request() const {
        nlohmann::json j = nlohmann::json::object();
        if (!project.empty()) j["project"] = project;
        if (!zone.empty()) j["zone"] = zone;
        if (!bucket.empty()) j["bucket"] = bucket;
        if (!token_uri.empty()) j["token_uri"] = token_uri;
        if (!compute_endpoint.empty()) j["compute_endpoint"] = compute_endpoint;
        if (!storage_endpoint.empty()) j["storage_endpoint"] = storage_endpoint;
        return j;
    }
};

void add_gcp_flags(CLI::App *app, GcpFlags &f);

struct ProviderFlags {
    std::string provider = "vsphere";
    std::string config;
    ConnectionFlags conn;
    AwsFlags aws;
    AzureFlags azure;
    GcpFlags gcp;

    bool request(nlohmann::json &out, std::string &error) const {
        nlohmann::json config = provider == "vsphere" ? conn.request() : nlohmann::json::object();
        // --retries is every provider's max_attempts (each has its own default when not given).
        if (provider != "vsphere" && conn.retries_option != nullptr && conn.retries_option->count() > 0) config["max_attempts"] = conn.retries;
        if (!aws.empty()) {
            if (provider != "aws") {
                error = "--profile, --region, --endpoint-url, --block-requests and --aws-attempts are for --provider aws";
                return false;
            }
            config.update(aws.request());
        }
        if (!azure.empty()) {
            if (provider != "azure") {
                error = "--arm-endpoint, --authority and --subscription are for --provider azure";
                return false;
            }
            config.update(azure.request());
        }
        if (!gcp.empty()) {
            if (provider != "gcp") {
                error = "--project, --zone, --bucket, --token-uri, --compute-endpoint and --storage-endpoint are for --provider gcp";
                return false;
            }
            config.update(gcp.request());
        }
        if (!this->config.empty()) {
            nlohmann::json given;
            if (!read_json_argument("--config", this->config, given, error)) return false;
            if (!given.is_object()) {
                error = "--config: expected a JSON object";
                return false;
            }
            config.update(given);
        }
        out = nlohmann::json{{"provider", provider}, {"config", std::move(config)}};
        return true;
    }
};

void add_provider_flags(CLI::App *app, ProviderFlags &f);

}  // namespace hsdk
