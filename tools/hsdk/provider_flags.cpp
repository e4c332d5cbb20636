#include "provider_flags.hpp"

#include <fmt/format.h>

namespace hsdk {

void add_connection_flags(CLI::App *app, ConnectionFlags &f) {
    app->add_option("--url", f.url, "vCenter or ESXi: https://host[/sdk] (default: $GOVC_URL)");
    app->add_option("--username,-u", f.username, "User name (default: $GOVC_USERNAME)");
    auto *env = app->add_option("--password-env", f.password_env, "Read the password from this environment variable (default: $GOVC_PASSWORD)");
    auto *file = app->add_option("--password-file", f.password_file, "Read the password from the first line of this file");
    env->excludes(file);
    auto *insecure = app->add_flag("--insecure,-k", f.insecure, "Do not verify the server certificate (default: $GOVC_INSECURE)");
    auto *ca = app->add_option("--ca-file", f.ca_file, "Trust the certificates in this PEM file instead of the system store");
    auto *thumb = app->add_option("--thumbprint", f.thumbprint, "Accept only the server certificate with this SHA-256 thumbprint");
    insecure->excludes(ca)->excludes(thumb);
    f.retries_option = app->add_option("--retries", f.retries,
                                       "Tries per request on transient failures (reset, 429, 5xx, timeout); default 5 for vSphere, "
                                       "the provider's max_attempts for the others")
                           ->check(CLI::Range(1u, 100u));
}

void add_aws_flags(CLI::App *app, AwsFlags &f, const char *what) {
    app->add_option("--profile", f.profile, fmt::format("{}: the AWS profile of ~/.aws/credentials and ~/.aws/config (default: $AWS_PROFILE, then default)", what));
    app->add_option("--region", f.region, fmt::format("{}: the AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's)", what));
    app->add_option("--endpoint-url", f.endpoint_url,
                    fmt::format("{}: every AWS service at this URL (default: $AWS_ENDPOINT_URL, $AWS_ENDPOINT_URL_EC2 / _EBS / _S3)", what));
    app->add_option("--block-requests", f.block_requests, fmt::format("{}: EBS GetSnapshotBlock calls in flight per snapshot (default 64)", what))
        ->check(CLI::Range(1u, 512u));
    app->add_option("--aws-attempts", f.max_attempts,
                    fmt::format("{}: tries per AWS call on throttling, 5xx and resets (default 10; refusals are never retried)", what))
        ->check(CLI::Range(1u, 100u));
}

void add_azure_flags(CLI::App *app, AzureFlags &f) {
    app->add_option("--arm-endpoint", f.arm_endpoint, "--provider azure: Azure Resource Manager at this URL (default https://management.azure.com)");
    app->add_option("--authority", f.authority, "--provider azure: the token authority (default https://login.microsoftonline.com)");
    app->add_option("--subscription", f.subscription, "--provider azure: the subscription (default: $AZURE_SUBSCRIPTION_ID)");
}

void add_gcp_flags(CLI::App *app, GcpFlags &f) {
    app->add_option("--project", f.project, "--provider gcp: the project (default: $GOOGLE_CLOUD_PROJECT, the key's)");
    app->add_option("--zone", f.zone, "--provider gcp: only this zone (default: every zone)");
    app->add_option("--bucket", f.bucket, "--provider gcp: the Cloud Storage bucket exports are written to");
    app->add_option("--token-uri", f.token_uri, "--provider gcp: the OAuth2 token endpoint (default: the key's token_uri)");
    app->add_option("--compute-endpoint", f.compute_endpoint, "--provider gcp: Compute Engine at this URL (default https://compute.googleapis.com)");
    app->add_option("--storage-endpoint", f.storage_endpoint,
                    "--provider gcp: Cloud Storage at this URL (default: $STORAGE_EMULATOR_HOST, else https://storage.googleapis.com)");
}

void add_provider_flags(CLI::App *app, ProviderFlags &f) {
    app->add_option("--provider", f.provider, "Provider (hsdk providers lists them; default vsphere)");
    app->add_option("--config", f.config,
                    "The provider's connection config: JSON, @FILE or @- (its schema: hsdk providers --json); "
                    "keep secrets in a file or in the variables the provider reads");
    add_connection_flags(app, f.conn);
    add_aws_flags(app, f.aws, "--provider aws");
    add_azure_flags(app, f.azure);
    add_gcp_flags(app, f.gcp);
}

}  // namespace hsdk
