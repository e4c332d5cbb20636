// The provider session an export or backup runs on: vSphere from ExportOptions-style connection
// options when no config is given (the vSphere-only API's callers), else the named provider
// connected with its config.
#pragma once

#include <hypersdk/provider.hpp>
#include <hypersdk/vsphere.hpp>

#include "providers/builtin.hpp"

namespace hypersdk::exporter {

inline Result<std::unique_ptr<ProviderSession>> connect_provider(const std::string &provider, const nlohmann::json &config,
                                                                 const vsphere::ConnectionOptions &connection, const CancelToken &cancel) {
    if (provider == "vsphere" && (config.is_null() || config.empty())) return vsphere::open_session(connection);
    HSDK_TRY(auto found, find_provider(provider));
    return found->connect(config, cancel);
}

}  // namespace hypersdk::exporter
