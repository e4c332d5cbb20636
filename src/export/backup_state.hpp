// A backup repository's state document (state.json in each VM's folder; docs/backup.md): the
// VM it belongs to, its latest description, and every point with, per disk, the link file,
// change id, sizes and SHA-256. Written atomically (a temporary file, fsync, rename, fsync of the
// folder) so a crash leaves the old or the new document, never a torn one.
#pragma once

#include <hypersdk/backup.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace hypersdk::backup {

inline constexpr const char *state_file_name = "state.json";
inline constexpr const char *state_format = "hypersdk-backup-state";
inline constexpr int state_version = 1;

struct VmIdentity {
    std::string provider, id, uuid, instance_uuid, name, inventory_path;
};

struct Point {
    std::string id;       // "1", "2", ...
    std::string created;  // ISO 8601 UTC
    std::string kind;     // full or incremental
    std::string snapshot;
    std::vector<BackupDiskResult> disks;
};

struct State {
    VmIdentity vm;
    nlohmann::json description = nlohmann::json::object();  // the VM model at the latest point
    unsigned next_point = 1;
    std::vector<Point> points;  // oldest first
};

VmIdentity identity_of(const VirtualMachine &vm);
// conflict when the folder's state belongs to another VM (the UUIDs or ids differ).
Result<void> check_same_vm(const State &state, const VirtualMachine &vm, const std::string &folder);

nlohmann::json to_json(const BackupDiskResult &d);
nlohmann::json to_json(const Point &p);
nlohmann::json to_json(const State &s);

// nullopt when the folder has no state document; corrupt_image-like errors (invalid_argument)
// naming the file when it cannot be read as one.
Result<std::optional<State>> load_state(const std::string &folder);
Result<void> save_state(const std::string &folder, const State &state);

// The point by id ("latest": the newest); not_found naming the points there are.
Result<const Point *> find_point(const State &state, const std::string &id);

// The VM's folder in `repo` for a name given by a user: the folder itself, or the folder whose
// state names that VM (by name, id, UUID or inventory path). not_found otherwise.
Result<std::string> find_vm_folder(const std::string &repo, const std::string &vm);

std::string utc_now_iso8601();
// Seconds since the epoch of an ISO 8601 UTC time as utc_now_iso8601() writes it; nullopt otherwise.
std::optional<double> parse_iso8601(const std::string &text);

}  // namespace hypersdk::backup
