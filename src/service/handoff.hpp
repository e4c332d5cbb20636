// The hyper2kvm hand-off of a finished export: the existing daemon's artifact manifest v1.0
// (artifact-manifest.json in the output folder) and, in daemon mode, the disks placed into
// hyper2kvm's watch directory. hyper2kvm's watcher takes a disk file by its extension once its size
// stops changing, so a disk must appear there whole: renamed in (same file system), or copied under
// a name the watcher ignores and renamed when complete.
#pragma once

#include "service/jobs.hpp"

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

namespace hypersdk::service {

// The manifest of an export.run result (disk files must exist; their SHA-256 is taken if the export
// did not record it). `handoff` is the job's hyper2kvm_integration, `settings` the daemon's hyper2kvm.*.
Result<nlohmann::json> artifact_manifest(const JobRecord &job, const nlohmann::json &export_result, const nlohmann::json &settings);

// Writes the manifest, places the disks when daemon_mode is on; returns {manifest, watch_dir?, disks[]}.
Result<nlohmann::json> hyper2kvm_handoff(const JobRecord &job, const nlohmann::json &export_result, const nlohmann::json &settings);

}  // namespace hypersdk::service
