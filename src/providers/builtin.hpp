// The providers built into the library, one accessor each (defined in the provider's folder).
#pragma once

#include <hypersdk/provider.hpp>

#include <memory>

namespace hypersdk::vsphere {
std::shared_ptr<const Provider> vsphere_provider();
}  // namespace hypersdk::vsphere
