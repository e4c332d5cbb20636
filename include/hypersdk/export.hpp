// Exporting a VM from any provider (vSphere by default): OVF/OVA or straight into a disk format,
// with progress, cancel, resume, retries and clean-up. One session serves every provider: the
// provider prepares the export (see PreparedExport in <hypersdk/provider.hpp>), this does the rest.
#pragma once

#include <hypersdk/artifact.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/progress.hpp>
#include <hypersdk/vm.hpp>
#include <hypersdk/vsphere.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk {

struct ExportProgress {
    std::string phase;  // connecting, snapshot, exporting disk N of M, converting, manifest, cleanup
    unsigned disk_index = 0;  // 1-based while a disk is moving, else 0
    unsigned disk_count = 0;
    std::uint64_t disk_bytes_done = 0;
    std::uint64_t disk_bytes_total = 0;  // 0 when the server does not say
    std::uint64_t bytes_done = 0;        // all disks
    std::uint64_t bytes_total = 0;       // all disks, as far as known
    double rate_bytes_per_sec = 0;
    double eta_seconds = -1;  // negative when unknown
    unsigned disks_done = 0;  // disks completely received
};

using ExportProgressCallback = std::function<ProgressAction(const ExportProgress &)>;

enum class ExportTransport {
    automatic,  // NFC lease; datastore download if the server cannot export
    nfc,        // HttpNfcLease only (ExportVm / ExportSnapshot)
    datastore,  // datastore HTTP GET of the disk files (/folder/<path>?dcPath=&dsName=)
};

struct ExportOptions {
    // The provider to export from (see <hypersdk/provider.hpp>). "vsphere" (the default) is
    // connected with `connection` when `provider_config` is empty; any other provider (and vSphere
    // given a config) with `provider_config`.
    std::string provider = "vsphere";
    nlohmann::json provider_config = nlohmann::json::object();
    // Refuse before any disk byte moves when the output folder has less free space than 1.2 x the
    // disks' data (the provider's figure: vSphere's layoutEx file sizes, a stream's length, a
    // block source's allocated bytes), naming both.
    bool space_check = true;
    vsphere::ConnectionOptions connection;
    std::string vm;          // inventory path, e.g. /DC0/vm/DC0_H0_VM0
    std::string output_dir;  // created if missing
    // ova, ovf, qcow2, raw, vmdk, vhd, vhdx, vdi. The disk formats other than vmdk are written as
    // the lease's stream-optimized VMDK arrives, with no intermediate file.
    std::string format = "ova";
    FormatOptions format_options;  // -o options of that disk format (cluster_size, subformat, ...)
    bool compress = false;         // compress where the disk format can
    // The outputs compressed as streams (docs/compression.md): raw disks become NAME.raw.gz|.zst|.lz4;
    // an OVF or OVA stores its disk files gzip-compressed (ovf:compression="gzip", as ovftool
    // --compress writes them); zstd or lz4 compress a whole .ova into NAME.ova.zst|.lz4.
    CompressionOptions compression;
    // The disk files encrypted (they keep their names; docs/encryption.md). An OVF or OVA keeps its
    // descriptor and manifest readable, the manifest listing the digests of the encrypted files.
    std::optional<EncryptionOptions> encryption;
    unsigned threads = 0;          // conversion workers per disk; 0 = one per core
    // Continue an interrupted export from the state files next to the output, at the byte it
    // reached. Disks kept as VMDK (vmdk, ovf, ova) always leave such state. A disk converted on the
    // fly (qcow2, raw, ...) leaves it only when resume is set for the run that gets interrupted:
    // the received stream is then also kept on disk, and the next run replays it into a fresh
    // conversion before continuing with a Range request. Without resume, a converted disk has no
    // intermediate file and an interrupted one starts again from zero.
    bool resume = false;
    bool quiesce = false;       // quiesce the guest for the snapshot of a running VM
    unsigned parallel = 1;      // disks moving at once
    bool overwrite = false;     // replace existing outputs
    // Also write <output_dir>/<vm>.hyper2kvm.json, hyper2kvm's artifact manifest of the exported
    // disks (docs/hyper2kvm-manifest.md); disk formats only (an OVA goes through kvm import).
    bool hyper2kvm_manifest = false;
    ExportTransport transport = ExportTransport::automatic;
    // How another provider exports, in its own words (aws: ebs-direct, the default, or
    // export-task); empty: the provider's choice.
    std::string method;
    ExportProgressCallback progress;  // may cancel
    CancelToken cancel;               // also cancels connection.cancel's work
};

struct ExportResult {
    VirtualMachine vm;                // as discovered, disks' file/file_format/sha256 filled in
    std::vector<std::string> files;   // every file written, in the order written
    std::uint64_t bytes_received = 0; // from the network in this run
    std::uint64_t bytes_resumed = 0;  // skipped thanks to --resume
    std::string method;               // ExportVm, ExportSnapshot, datastore, or block reads (other providers)
    bool snapshot_used = false;
    double seconds = 0;
    std::optional<EncryptionRecord> encryption;  // how the disk files are encrypted, who can open them
    std::string compression;                     // the stream compression of the outputs, if any
};

// Output formats export() accepts, and those it can produce in this build.
std::vector<std::string> export_formats();

class ExportSession {
public:
    explicit ExportSession(ExportOptions options);
    ~ExportSession();
    ExportSession(const ExportSession &) = delete;
    ExportSession &operator=(const ExportSession &) = delete;

    // Runs the export. On failure or cancel: the snapshot is removed, the lease aborted, and
    // outputs are either removed or kept as clearly named resumable state (never as files that
    // look finished).
    Result<ExportResult> run();
    // From any thread: stops network and disk work promptly, then cleans up.
    void cancel() noexcept;

private:
    ExportOptions options_;
};

inline Result<ExportResult> export_vm(ExportOptions options) { return ExportSession(std::move(options)).run(); }

}  // namespace hypersdk
