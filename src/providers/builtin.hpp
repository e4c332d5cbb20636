// The providers built into the library, one accessor each (defined in the provider's folder).
#pragma once

#include <hypersdk/provider.hpp>
#include <hypersdk/vsphere.hpp>

#include <memory>

namespace hypersdk::vsphere {
std::shared_ptr<const Provider> vsphere_provider();
// A session over connection options as given (the environment already applied, or not wanted):
// the export session's way in for ExportOptions::connection.
std::unique_ptr<ProviderSession> open_session(ConnectionOptions options);
}  // namespace hypersdk::vsphere

namespace hypersdk::aws {
std::shared_ptr<const Provider> aws_provider();
}  // namespace hypersdk::aws

namespace hypersdk::azure {
std::shared_ptr<const Provider> azure_provider();
}  // namespace hypersdk::azure

namespace hypersdk::gcp {
std::shared_ptr<const Provider> gcp_provider();
}  // namespace hypersdk::gcp

namespace hypersdk::openstack {
std::shared_ptr<const Provider> openstack_provider();
}  // namespace hypersdk::openstack
