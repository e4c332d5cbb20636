// vSphere (vCenter or ESXi) through the Web Services API: connection options and VM discovery.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/vm.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace hypersdk::vsphere {

struct ConnectionOptions {
    std::string url;       // https://vcenter[/sdk]; a bare host name means https://host/sdk
    std::string username;
    std::string password;  // never logged, never part of an error message
    // TLS: verification is on unless `insecure`. `ca_file` trusts a PEM bundle instead of the
    // system store; `thumbprint` pins the server certificate's SHA-256 (hex, colons optional).
    bool insecure = false;
    std::string ca_file;
    std::string thumbprint;
    // Transient failures (connection refused/reset, timeouts, HTTP 5xx) are retried with
    // exponential backoff and jitter: at most `max_attempts` tries per request.
    unsigned max_attempts = 5;
    std::chrono::milliseconds initial_backoff{250};
    std::chrono::milliseconds max_backoff{8000};
    std::chrono::seconds connect_timeout{30};
    std::chrono::seconds stall_timeout{60};  // a transfer moving no byte this long times out
    CancelToken cancel;
};

// Fills what `options` leaves empty from GOVC_URL (which may carry user:password@), GOVC_USERNAME,
// GOVC_PASSWORD and GOVC_INSECURE (1/true). Fails with invalid_argument when no URL results.
Result<ConnectionOptions> with_environment(ConnectionOptions options);

// Connection options from a JSON config (api/common.json's vsphere_connection: url, username,
// password | password_env | password_file, insecure, ca_file, thumbprint, max_attempts), then
// with_environment(). The password is read from the variable or file named.
Result<ConnectionOptions> connection_from_json(const nlohmann::json &config, const CancelToken &cancel);

// Every VM of the inventory with its hardware, disks and NICs, sorted by inventory path.
Result<std::vector<VirtualMachine>> list_vms(const ConnectionOptions &options);
// One VM by inventory path ("/DC0/vm/folder/name"); not_found when nothing is there.
Result<VirtualMachine> find_vm(const ConnectionOptions &options, const std::string &inventory_path);

}  // namespace hypersdk::vsphere
