// The OpenStack provider's session: Nova servers with their flavors, Cinder volumes and ports;
// exports through Glance images of ours (Nova createImage for an image-backed server's root disk,
// Cinder upload-to-image for volumes), the image data then read into the target format, and the
// images deleted afterwards (unless kept), also after a failure or cancel.
#pragma once

#include "cloud/openstack/keystone.hpp"

#include <hypersdk/provider.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hypersdk::openstack {

// Nova microversion: 2.47 embeds the flavor in servers, 2.45 answers createImage with image_id.
inline constexpr const char *nova_microversion = "2.47";

struct Settings {
    bool keep_images = false;
    std::chrono::milliseconds poll_interval{2000};
    std::chrono::seconds image_timeout{3600};
    HttpSourceOptions http;  // reading image data: TLS, timeouts, cancel
};

class OpenStackSession final : public ProviderSession {
public:
    OpenStackSession(std::shared_ptr<cloud::openstack::Keystone> keystone, std::shared_ptr<cloud::RestClient> client, Settings settings)
        : keystone_(std::move(keystone)), client_(std::move(client)), settings_(std::move(settings)) {}

    Result<std::vector<VirtualMachine>> list_vms(const VmFilter &filter) override;
    Result<VirtualMachine> describe(const std::string &vm) override;
    Result<std::unique_ptr<PreparedExport>> prepare_export(const std::string &vm, const VirtualMachine &described,
                                                           const ExportPlan &plan) override;

    Result<nlohmann::json> nova(const std::string &method, const std::string &path, const nlohmann::json &body, const std::string &what);
    Result<std::string> endpoint(const char *type);
    // Deletes images; a note for each one that could not be deleted.
    std::vector<std::string> delete_images(const std::vector<std::string> &ids) noexcept;
    // Polls a Glance image until it is active.
    Result<nlohmann::json> wait_active(const std::string &id, const std::string &what, const CancelToken &cancel);

    [[nodiscard]] const std::shared_ptr<cloud::RestClient> &client() const { return client_; }
    [[nodiscard]] const Settings &settings() const { return settings_; }

private:
    Result<nlohmann::json> find_server(const std::string &vm);
    Result<VirtualMachine> to_vm(const nlohmann::json &server);

    std::shared_ptr<cloud::openstack::Keystone> keystone_;
    std::shared_ptr<cloud::RestClient> client_;
    Settings settings_;
};

}  // namespace hypersdk::openstack
