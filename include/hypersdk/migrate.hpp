// Warm migration: a VM's disks copied while it runs, kept close by precopy rounds of changed
// blocks, then a short cutover (the VM stopped, the last changes copied, the KVM hand-off
// written). Every step is idempotent and resumes from a state document in the output folder, so
// an outside scheduler can drive one step at a time and a killed run loses nothing (docs/migrate.md).
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/export.hpp>
#include <hypersdk/kvm.hpp>
#include <hypersdk/vm.hpp>
#include <hypersdk/vsphere.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk {

struct WarmMigrationOptions {
    // As for backups: "vsphere" (connection, or provider_config when given) or another provider
    // with changed_extents and stop_vm.
    std::string provider = "vsphere";
    nlohmann::json provider_config = nlohmann::json::object();
    vsphere::ConnectionOptions connection;
    std::string vm;          // inventory path, name or id
    std::string output_dir;  // the target disks, the state document and the hand-off files
    std::string format = "qcow2";  // qcow2 or raw: targets updated in place
    // run: the initial copy, precopy rounds until the expected downtime fits the budget, then the
    // cutover. precopy: one round (the initial copy first). cutover: the final step. status: the
    // state document, without connecting.
    std::string step = "run";
    std::chrono::seconds downtime_budget{60};
    // The longest a scheduler should wait between precopy rounds (next_round_in_seconds); 0: no cap.
    std::chrono::seconds interval{0};
    unsigned max_rounds = 10;  // run: precopy rounds before giving up on converging
    std::chrono::seconds shutdown_timeout{300};
    bool force_power_off = false;  // power off when the guest does not shut down in time
    bool quiesce = false;
    unsigned requests_in_flight = 8;  // changed-range reads in flight per disk (at least 8 by default)
    KvmOptions kvm;                   // the libvirt domain's options (disk_dir and disk_format are set)
    ExportProgressCallback progress;  // phases: connecting, snapshot, changes, round N, stopping, cutover, hand-off
    CancelToken cancel;
};

struct WarmRound {
    unsigned round = 0;      // 0: the initial copy
    std::string kind;        // full, delta or final
    std::string snapshot;
    std::string started;     // ISO 8601 UTC, when the snapshot was taken
    double seconds = 0;      // snapshot to last byte written
    std::uint64_t changed_bytes = 0;
    std::uint64_t bytes_read = 0;
    double transfer_rate = 0;  // bytes per second while copying
    double dirty_rate = 0;     // bytes changed per second since the previous round's snapshot (0 for the first)
    unsigned peak_requests_in_flight = 0;  // the most reads any disk had in flight
};

// As the state document and migrate.warm's result hold it.
nlohmann::json to_json(const WarmRound &round);

struct WarmDisk {
    std::string disk_id, label, file;
    std::uint64_t capacity = 0;
    std::string change_id;  // as of the last finished round
};

struct WarmMigrationResult {
    std::string phase;       // precopy, cutover or done
    std::string state_file;
    VirtualMachine vm;
    std::vector<WarmDisk> disks;
    std::vector<WarmRound> rounds;
    bool converged = false;  // the expected final delta fits the downtime budget
    double predicted_downtime_seconds = -1;  // negative until two rounds measured the rates
    std::optional<double> measured_downtime_seconds;  // stop requested .. hand-off written
    double next_round_in_seconds = 0;  // when a scheduler should run the next precopy round
    std::string stopped;     // how the VM was stopped (StopResult::how), once it was
    std::vector<std::string> files;  // the hand-off: disks, VM description, domain, manifest
};

Result<WarmMigrationResult> run_warm_migration(WarmMigrationOptions options);

}  // namespace hypersdk
