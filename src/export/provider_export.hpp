// Export from any provider with block reads: describe the VM, check the free space, read each disk
// as an image straight from the provider and convert it (or package it as OVF/OVA), publishing
// the files only when every disk is complete.
#pragma once

#include <hypersdk/export.hpp>

namespace hypersdk::exporter {

Result<ExportResult> export_from_provider(const ExportOptions &options);

}  // namespace hypersdk::exporter
