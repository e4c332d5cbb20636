// What an operation's handler sees: its request (validated, defaults filled in) and its job.
#pragma once

#include <hypersdk/artifact.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>
#include <hypersdk/export.hpp>
#include <hypersdk/kvm.hpp>
#include <hypersdk/vsphere.hpp>
#include <hypersdk/progress.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::ops {

class Context {
public:
    virtual ~Context() = default;
    [[nodiscard]] virtual const nlohmann::json &request() const noexcept = 0;
    [[nodiscard]] virtual const CancelToken &cancel() const noexcept = 0;
    [[nodiscard]] virtual const std::string &job_id() const noexcept = 0;
    // For the library's ProgressCallback parameters: each event goes to the job, and the answer is
    // cancel once the job is cancelled.
    [[nodiscard]] virtual ProgressCallback progress() = 0;
    virtual void report(const ProgressInfo &progress) = 0;
};

using Handler = Result<nlohmann::json> (*)(Context &);

struct HandlerEntry {
    std::string_view name;
    Handler handler;
};

// The handlers of each area; the registry joins them with api/ (a test requires both to match).
std::span<const HandlerEntry> image_handlers();
std::span<const HandlerEntry> vm_handlers();
std::span<const HandlerEntry> vsphere_handlers();
std::span<const HandlerEntry> provider_handlers();
std::span<const HandlerEntry> backup_handlers();
std::span<const HandlerEntry> migrate_handlers();
// The libvirt domain options of a request (kvm.domain's fields: name, network, bridge, maps, ...).
KvmOptions kvm_options(const nlohmann::json &request);
std::span<const HandlerEntry> cost_handlers();
// not_found for an unknown provider; invalid_argument naming the field when `config` does not fit its schema.
Result<void> validate_provider_config(const std::string &provider, const nlohmann::json &config);

// Where a request says which platform to talk to: "provider" and, for vSphere, "connection" with
// "config" merged over it (the GOVC_* variables fill in the rest); for others "config", checked
// against the provider's schema. Fills the three fields every provider-facing option struct has.
struct ProviderTarget {
    std::string provider;
    nlohmann::json config = nlohmann::json::object();  // other providers
    vsphere::ConnectionOptions connection;              // vSphere
};
Result<ProviderTarget> provider_target(Context &c);
// Export and backup progress as the job's progress: disks are the items.
ExportProgressCallback export_progress(Context &c);

// ---- reading a validated request ----------------------------------------------------------------

// The string at key, "" when absent.
std::string str(const nlohmann::json &r, std::string_view key);
std::optional<std::string> opt_str(const nlohmann::json &r, std::string_view key);
bool flag(const nlohmann::json &r, std::string_view key, bool fallback = false);
// A string or an array of strings at key, as a list (empty when absent).
std::vector<std::string> string_list(const nlohmann::json &r, std::string_view key);
std::uint64_t u64(const nlohmann::json &r, std::string_view key, std::uint64_t fallback = 0);
// Format options given as "key=value,..." text or as an object (sizes as integers, switches as booleans).
Result<FormatOptions> format_options(const nlohmann::json &r, std::string_view key);
// Open options from format_key (default "format"), allow_external_files, open_backing and the http
// source keys (headers, headers_file, insecure, ca_file); http requests stop when the job is cancelled.
Result<OpenOptions> open_options(const Context &c, std::string_view format_key = "format");

// "compress": true asks for the output format's own compression (qcow2, streamOptimized VMDK); a
// method name ("gzip", "zstd", "lz4") for the output compressed as a stream, at "compress_level".
bool native_compress(const nlohmann::json &r);
CompressionOptions stream_compression(const nlohmann::json &r);
// "encrypt": true with the flags' keys beside it (encrypt_method, passphrase_file, passphrase_env,
// key_file, recipient[], gpg_recipient[], gpg_home), or an object of them ("method" for
// encrypt_method). Empty when the request does not ask for encryption.
std::optional<EncryptionOptions> encryption_options(const nlohmann::json &r);
// Those keys read from `keys`, the method under `method_key` (file.encrypt says "method").
EncryptionOptions encryption_keys(const nlohmann::json &keys, std::string_view method_key);
nlohmann::json to_json(const EncryptionRecord &record);

}  // namespace hypersdk::ops
