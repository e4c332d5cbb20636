// Changed-block backups kept as qcow2 chains, and the chains themselves.
//
// A backup repository holds one folder per VM: the links of each disk's chain (the first a full
// qcow2, every later one a qcow2 overlay holding only the blocks changed since, backed by the
// previous link by relative name) and state.json (docs/backup.md), which records every point:
// per disk the link file, change id, sizes and SHA-256. Any link is a disk image that QEMU,
// qemu-img and libvirt open as it is; restore turns a point into any format.
#pragma once

#include <hypersdk/artifact.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/cbt.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/export.hpp>
#include <hypersdk/vm.hpp>
#include <hypersdk/vsphere.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk {

// ---- chains --------------------------------------------------------------------------------

struct ChainLink {
    std::string file;            // the link's file
    std::string format;          // qcow2, raw, vmdk, ...
    std::uint64_t virtual_size = 0;
    std::uint64_t file_bytes = 0;  // bytes its file(s) occupy
    std::string backing_file;    // as written in the link; empty for the base
    std::string backing_format;  // as written in the link
};

// The chain from `link` down to its base (top first). Backing files are followed only inside the
// link's folder unless options allow more.
Result<std::vector<ChainLink>> chain_info(const std::string &link, const OpenOptions &options = {});

struct ChainReport {
    std::vector<ChainLink> links;       // top first
    std::vector<std::string> problems;  // empty: the chain is sound
    std::size_t hashes_checked = 0;     // link files whose SHA-256 a repository's state.json recorded, all matching
    [[nodiscard]] bool ok() const noexcept { return problems.empty(); }
};

// Checks every link: it opens, its metadata is consistent (check_image), the backing file it
// names exists with the format it says, all links have one virtual size, and where the folder is
// a backup repository's, each link file's SHA-256 equals the one recorded. Problems are reported,
// not failed on; errors are for a chain that cannot be looked at at all.
Result<ChainReport> verify_chain(const std::string &link, const CancelToken &cancel = {});
// The same for encrypted links (a repository backed up with encryption): each opened with `keys`.
Result<ChainReport> verify_chain(const std::string &link, const CancelToken &cancel, const DecryptionKeys &keys);

// ---- backups -------------------------------------------------------------------------------

struct BackupOptions {
    // As for exports: "vsphere" (connection, or provider_config when given) or another provider
    // with changed_extents.
    std::string provider = "vsphere";
    nlohmann::json provider_config = nlohmann::json::object();
    vsphere::ConnectionOptions connection;
    std::string vm;    // inventory path, name or id
    std::string repo;  // the repository folder (created if missing)
    bool full = false; // copy every disk in full even where an incremental is possible
    bool quiesce = false;
    unsigned threads = 0;               // conversion workers; 0: one per core
    unsigned requests_in_flight = 8;    // changed-range reads in flight per disk
    // Each new link file encrypted (it keeps its name; state.json records how). The chain then
    // needs the keys to be read: restore, verify and prune take them.
    std::optional<EncryptionOptions> encryption;
    ExportProgressCallback progress;    // phases: connecting, snapshot, changes, disk N of M, cleanup
    CancelToken cancel;
};

struct BackupDiskResult {
    std::string disk_id, label;
    std::string file;          // the new link (in the VM's folder of the repository)
    std::string backing_file;  // the previous link it is backed by; empty for a full copy
    std::string change_id;     // the point's change id
    bool full = false;
    std::string notice;        // why a disk was copied in full when an incremental was asked
    std::uint64_t capacity = 0;
    std::uint64_t changed_bytes = 0;   // bytes the changes cover
    std::uint64_t bytes_read = 0;      // read from the source
    // The platform refused reads at an offset: the whole disk came as its export stream and only
    // the changed parts were kept.
    bool whole_disk_transferred = false;
    std::uint64_t bytes_written = 0;   // data written into the link
    std::uint64_t file_bytes = 0;
    std::string sha256;                // of the link file (as stored: encrypted, when it is)
    std::optional<EncryptionRecord> encryption;  // how the link file is encrypted
};

struct BackupResult {
    std::string folder;  // the VM's folder in the repository
    std::string point;   // the new point's id
    std::string kind;    // full or incremental
    std::string snapshot;
    VirtualMachine vm;
    std::vector<BackupDiskResult> disks;
    std::uint64_t bytes_read = 0;
    double seconds = 0;
};

// A full backup when the repository holds none of this VM (or with `full`), else an incremental
// from the change ids the state records. Never more than one snapshot of ours on the VM: leftovers
// of a crashed run are removed first, and the point's snapshot is removed before the point is
// recorded. On failure nothing is added to the repository.
Result<BackupResult> run_backup(BackupOptions options);

// Every VM folder of the repository with its points: {"vms": [{"folder", "vm": {...}, "points": [...]}]}.
Result<nlohmann::json> list_backups(const std::string &repo);

struct RestoreOptions {
    std::string repo;
    std::string vm;              // the VM's folder name in the repository, or its name, id or UUID
    std::string point = "latest";
    std::string format = "qcow2";  // raw, qcow2, vmdk, vhd, vhdx, vdi
    FormatOptions format_options;
    std::string output_dir;
    bool overwrite = false;
    unsigned threads = 0;
    DecryptionKeys keys;  // for encrypted links
    ProgressCallback progress;
    CancelToken cancel;
};

struct RestoreResult {
    std::string point;
    std::vector<std::string> files;  // one per disk, written atomically
};

// Each disk of the point as one file of `format` (the chain flattened), after the chain is
// verified: a restore is never silently wrong, and a failed one leaves no output file.
Result<RestoreResult> restore_backup(const RestoreOptions &options);

struct PruneOptions {
    std::string repo;
    std::string vm;
    std::optional<unsigned> keep_last;  // keep this many newest points (at least 1)
    std::optional<double> keep_days;    // keep points younger than this (the newest always)
    // Encrypted links that are folded are decrypted with these and encrypted again as they were
    // (the same method; age and gpg to the recipients recorded, aes-256-gcm and age passphrases
    // with the key given here).
    DecryptionKeys keys;
    CancelToken cancel;
};

struct PruneResult {
    std::vector<std::string> removed_points, kept_points;
    std::vector<std::string> removed_files;
    std::vector<std::string> folded_files;  // links of the oldest kept point, made standalone
};

// Removes the oldest points: the oldest kept point's links are folded into standalone files first
// (same names, so newer links stay valid), then the older links go. A link a kept point needs is
// never removed.
Result<PruneResult> prune_backups(const PruneOptions &options);

}  // namespace hypersdk
