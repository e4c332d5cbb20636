// The GCP provider's session: Compute Engine discovery of instances, their disks and NICs;
// exports through the image-export path Google offers (an image of each disk, a Cloud Build run
// of gce_vm_image_export writing it to a bucket), the object then streamed into the target format.
// Images, objects and builds of ours are removed afterwards (unless kept), also after a failure
// or cancel.
#pragma once

#include "cloud/gcp/api.hpp"

#include <hypersdk/provider.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace hypersdk::gcp {

inline constexpr const char *export_step_image = "gcr.io/compute-image-tools/gce_vm_image_export:release";

struct Settings {
    std::string zone;                          // empty: every zone (aggregated lists)
    std::string bucket;                        // where exports are written
    std::string object_prefix = "hypersdk-exports/";
    std::string export_format;                 // empty: the default tar.gz of disk.raw; vmdk, vhdx, vpc, vdi, qcow2
    bool keep_exports = false;                 // keep images and objects of ours
    std::chrono::seconds build_timeout{7200};  // how long an export build may run
    HttpSourceOptions http;                    // for reading objects: TLS, timeouts, cancel
};

class GcpSession final : public ProviderSession {
public:
    GcpSession(std::shared_ptr<cloud::gcp::Api> api, Settings settings) : api_(std::move(api)), settings_(std::move(settings)) {}

    Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) override;
    Result<VirtualMachine> describe(const std::string &vm) override;
    Result<std::unique_ptr<PreparedExport>> prepare_export(const std::string &vm, const VirtualMachine &described,
                                                           const ExportPlan &plan) override;

    [[nodiscard]] const std::shared_ptr<cloud::gcp::Api> &api() const { return api_; }
    [[nodiscard]] const Settings &settings() const { return settings_; }

private:
    Result<nlohmann::json> find_instance(const std::string &vm);
    Result<VirtualMachine> to_vm(const nlohmann::json &instance);
    Result<std::pair<int, std::uint64_t>> machine_type(const std::string &zone, const std::string &type);

    std::shared_ptr<cloud::gcp::Api> api_;
    Settings settings_;
    std::map<std::string, std::pair<int, std::uint64_t>> machine_types_;
};

}  // namespace hypersdk::gcp
