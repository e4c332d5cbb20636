// vSphere's half of an export: the snapshot a running VM needs, the NFC lease (ExportVm /
// ExportSnapshot) with its keepalive and manifest, or datastore downloads; each disk handed over
// as a DiskStream. The generic export session does the rest.
#pragma once

#include "providers/vsphere/discovery.hpp"

#include <hypersdk/provider.hpp>

#include <memory>

namespace hypersdk::vsphere {

// plan.transport: "" or "auto" (lease; datastore when the server cannot export through one),
// "nfc", "datastore".
Result<std::unique_ptr<PreparedExport>> prepare_export(std::shared_ptr<Session> session, FoundVm found, const ExportPlan &plan);

}  // namespace hypersdk::vsphere
