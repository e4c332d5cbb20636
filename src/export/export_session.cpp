// ExportSession: one export for every provider. The provider prepares the export on its platform
// (snapshot, lease) and hands each disk over as blocks or a stream; everything else happens here:
// the free-space pre-flight, disks in parallel, resume, conversion as the bytes arrive, OVF/OVA
// with manifests, progress, cancel, and clean-up that leaves nothing looking finished.
#include "core/executor.hpp"
#include "export/connect.hpp"
#include "export/download.hpp"
#include "export/package.hpp"
#include "export/progress.hpp"
#include "export/streamed_conversion.hpp"
#include "format/vmdk/sparse_header.hpp"
#include "io/artifact.hpp"
#include "io/file.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/hash.hpp>
#include <hypersdk/kvm.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/provider.hpp>

#include <fmt/format.h>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>

namespace hypersdk {
namespace {

using exporter::DownloadResult;

const std::vector<std::string> &all_formats() {
    static const std::vector<std::string> f = {"ova", "ovf", "qcow2", "raw", "vmdk", "vhd", "vhdx", "vdi"};
    return f;
}

Result<void> check_format(const std::string &format) {
    if (std::find(all_formats().begin(), all_formats().end(), format) == all_formats().end())
        return fail(Errc::invalid_argument, fmt::format("unknown export format '{}' (ova, ovf, qcow2, raw, vmdk, vhd, vhdx, vdi)", format));
    return success();
}

// Formats the disks are converted into (vmdk, ovf and ova keep or write VMDKs).
bool converts(const std::string &format) { return format != "vmdk" && format != "ova" && format != "ovf"; }

const char *transport_name(ExportTransport t) {
    switch (t) {
    case ExportTransport::nfc: return "nfc";
    case ExportTransport::datastore: return "datastore";
    case ExportTransport::automatic: break;
    }
    return "auto";
}

std::string human(std::uint64_t bytes) {
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes);
    std::size_t u = 0;
    while (v >= 1024 && u + 1 < std::size(units)) {
        v /= 1024;
        ++u;
    }
    return u == 0 ? fmt::format("{} bytes", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

struct DiskJob {
    unsigned index = 0;  // 1-based
    ExportDisk *source = nullptr;
    VmDisk *disk = nullptr;
    std::string final_path;
    // Where the disk file appears for the user: final_path, unless the disk is sealed (compressed
    // as a stream or encrypted), when final_path is a hidden plain staging file converted into it.
    std::string published_path;
    std::unique_ptr<Image> image;  // block disks, opened in their format
    // Where the disk's bytes are once transferred (a stream's partial file, a block disk's
    // staged conversion), their size and SHA-256 (filled for what a package lists).
    std::string ready_path;
    std::uint64_t ready_bytes = 0;
    std::string ready_sha256;
    DownloadResult result;                                      // stream disks
    std::unique_ptr<exporter::StreamedConversion> conversion;  // streams converted as they arrive
};

class Runner {
public:
    explicit Runner(ExportOptions &o) : o_(o) {}

    Result<ExportResult> run() {
        const auto start = std::chrono::steady_clock::now();
        auto r = body();
        if (!r) {
            Error e = r.error();
            cleanup_after_failure(e);
            return fail(e);
        }
        result_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        log(LogLevel::info, fmt::format("export: {} from '{}' ({}): {} disk(s), {} bytes moved, {:.1f} s", o_.vm, o_.provider,
                                        result_.method, result_.vm.disks.size(), result_.bytes_received, result_.seconds));
        return std::move(result_);
    }

private:
    Result<void> body() {
        HSDK_TRYV(check_format(o_.format));
        if (o_.vm.empty()) return fail(Errc::invalid_argument, "no VM given (inventory path such as /DC0/vm/name, or a name)");
        if (o_.output_dir.empty()) return fail(Errc::invalid_argument, "no output folder given");
        if (o_.hyper2kvm_manifest && (o_.format == "ova" || o_.format == "ovf"))
            return fail(Errc::invalid_argument, fmt::format("the hyper2kvm manifest describes disk files: export to a disk format "
                                                            "(qcow2, raw, ...), or turn the {} into a KVM guest with kvm import",
                                                            o_.format));
        HSDK_TRYV(check_artifacts());
        std::error_code ec;
        std::filesystem::create_directories(o_.output_dir, ec);
        if (ec) return fail(io::errno_error(ec.value(), "cannot create the output folder", o_.output_dir));

        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel, 0);
        tracker_->phase("connecting");
        HSDK_TRY(session_, connect());
        HSDK_TRY(auto described, session_->describe(o_.vm));
        if (described.disks.empty()) return fail(Errc::invalid_argument, fmt::format("VM '{}' has no disks to export", o_.vm));
        const std::string stem = exporter::file_stem(described.name.empty() ? o_.vm : described.name);
        for (const auto &path : planned_outputs(stem, described.disks.size())) {
            struct stat st {};
            if (!o_.overwrite && ::lstat(path.c_str(), &st) == 0)
                return fail(Errc::conflict, fmt::format("output '{}' already exists (overwrite not allowed)", path));
        }
        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel,
                                                                     static_cast<unsigned>(described.disks.size()));

        ExportPlan plan;
        plan.quiesce = o_.quiesce;
        plan.transport = o_.provider == "vsphere" ? transport_name(o_.transport) : o_.method;
        plan.cancel = o_.cancel;
        plan.phase = [this](const std::string &p) { tracker_->phase(p); };
        plan.resume = o_.resume;
        plan.work_dir = o_.output_dir;
        HSDK_TRY(export_, session_->prepare_export(o_.vm, described, plan));
        result_.vm = export_->vm();
        result_.method = export_->method();
        result_.snapshot_used = export_->snapshot_used();
        auto &sources = export_->disks();
        if (sources.size() != result_.vm.disks.size())
            return fail(Errc::remote_error, fmt::format("the provider hands over {} disks but the VM has {}", sources.size(),
                                                        result_.vm.disks.size()));

        std::vector<DiskJob> jobs;
        for (std::size_t i = 0; i < sources.size(); ++i) {
            HSDK_TRY(auto job, make_job(i, sources[i], stem));
            jobs.push_back(std::move(job));
        }
        if (o_.space_check) HSDK_TRYV(check_space(jobs));

        start_keepalive();
        auto moved = transfer_all(jobs);
        stop_keepalive();
        HSDK_TRYV(moved);

        tracker_->phase("manifest");
        std::vector<ReceivedDisk> received(jobs.size());
        for (std::size_t i = 0; i < jobs.size(); ++i)
            if (jobs[i].source->stream)
                received[i] = {jobs[i].result.partial_path, jobs[i].result.size, jobs[i].result.sha1, jobs[i].result.sha256};
        if (auto verified = export_->verify(received); !verified) {
            corrupt_ = true;
            return fail(verified.error());
        }
        HSDK_TRYV(o_.cancel.check());
        HSDK_TRYV(export_->complete());
        HSDK_TRYV(publish(jobs, stem));
        if (o_.hyper2kvm_manifest) HSDK_TRYV(write_hyper2kvm_manifest(stem));
        tracker_->phase("cleanup");
        return success();
    }

    // hyper2kvm's artifact manifest of the disks just published (sizes and SHA-256 measured).
    Result<void> write_hyper2kvm_manifest(const std::string &stem) {
        tracker_->phase("manifest");
        KvmOptions kvm;
        kvm.disk_dir = o_.output_dir;
        kvm.disk_format = o_.format;
        const std::string path = fmt::format("{}/{}.hyper2kvm.json", o_.output_dir, stem);
        auto manifest = hyper2kvm_manifest(result_.vm, kvm, o_.cancel);
        if (manifest) {
            if (auto written = write_json_file(path, manifest.value()); !written) manifest = fail(written.error());
        }
        if (!manifest) {
            // The disks stay (they are complete); the export as asked did not finish.
            return fail(manifest.error().with_context("writing the hyper2kvm manifest"));
        }
        result_.files.push_back(path);
        return success();
    }

    // Outputs compressed as streams or encrypted once their bytes are right (io/artifact.hpp).
    [[nodiscard]] bool sealing() const { return !o_.compression.empty() || o_.encryption.has_value(); }
    [[nodiscard]] const EncryptionOptions *encryption() const { return o_.encryption ? &*o_.encryption : nullptr; }
    // zstd and lz4 compress a whole OVA (OVF defines only gzip for its files).
    [[nodiscard]] bool whole_ova_compressed() const { return o_.format == "ova" && !o_.compression.empty() && o_.compression.method != "gzip"; }
    // The compression of each disk file: stream compression of raw disks, gzip members of packages.
    [[nodiscard]] CompressionOptions disk_compression() const {
        if (o_.format == "raw" || ((o_.format == "ova" || o_.format == "ovf") && o_.compression.method == "gzip")) return o_.compression;
        return {};
    }

    Result<void> check_artifacts() const {
        if (!sealing()) return success();
        HSDK_TRYV(io::check_artifact_options(o_.compression, encryption()));
        if (!o_.compression.empty() && o_.format != "raw" && o_.format != "ova" && !(o_.format == "ovf" && o_.compression.method == "gzip"))
            return fail(Errc::invalid_argument,
                        fmt::format("compression {} applies to raw disks and OVA packages (and gzip to OVF folders); {} compresses "
                                    "in its own format: ask for compress = true instead",
                                    o_.compression.method, o_.format));
        if (o_.hyper2kvm_manifest)
            return fail(Errc::invalid_argument, "the hyper2kvm manifest hands the disk files to KVM as they are: a compressed or "
                                                "encrypted disk cannot run; leave out the manifest, or the compression and encryption");
        return success();
    }

    std::string ova_path(const std::string &stem) const {
        const std::string plain = fmt::format("{}/{}.ova", o_.output_dir, stem);
        return whole_ova_compressed() ? io::compressed_name(plain, o_.compression) : plain;
    }

    // Seals one finished file into `out` and records how.
    Result<io::SealedFile> seal(const std::string &plain, const std::string &out, const CompressionOptions &compression,
                                const EncryptionOptions *enc) {
        tracker_->phase(enc ? "encrypting" : "compressing");
        HSDK_TRY(auto sealed, io::seal_file(plain, out, compression, enc, true));
        if (sealed.encryption) result_.encryption = sealed.encryption;
        if (!compression.empty()) result_.compression = compression.method;
        return sealed;
    }

    // Package disks (ovf, ova, vmdk): each ready file sealed beside it under a hidden name, which
    // then stands for the disk (the manifest lists the digests of these stored bytes).
    Result<void> seal_package_disks(std::vector<DiskJob> &jobs) {
        const CompressionOptions compression = disk_compression();
        if (compression.empty() && !encryption()) return success();
        for (auto &j : jobs) {
            const std::string sealed_path = fmt::format("{}/.{}.hsdk-sealed", o_.output_dir, io::base_name(j.final_path));
            {
                std::lock_guard lock(totals_mutex_);
                staged_.push_back(sealed_path);
            }
            HSDK_TRY(auto sealed, seal(j.ready_path, sealed_path, compression, encryption()));
            if (j.image) ::unlink(j.ready_path.c_str());  // a staged conversion: the sealed file replaces it
            else exporter::discard_partial(j.final_path);  // the received stream (its resume state goes too)
            j.ready_path = sealed_path;
            j.ready_bytes = sealed.bytes;
            HSDK_TRY(j.ready_sha256, file_digest_hex(sealed_path, DigestAlgorithm::sha256, o_.cancel));
        }
        return success();
    }

    Result<std::unique_ptr<ProviderSession>> connect() {
        return exporter::connect_provider(o_.provider, o_.provider_config, o_.connection, o_.cancel);
    }

    std::string disk_path_for(const std::string &stem, std::size_t n) const {
        const std::string ext = converts(o_.format) ? o_.format : "vmdk";
        return fmt::format("{}/{}-disk{}.{}", o_.output_dir, stem, n, ext);
    }

    // The name a disk file is published under (a raw disk compressed as a stream gets the suffix).
    std::string published_disk_path(const std::string &stem, std::size_t n) const {
        const std::string plain = disk_path_for(stem, n);
        return o_.format == "raw" && !o_.compression.empty() ? io::compressed_name(plain, o_.compression) : plain;
    }

    std::vector<std::string> planned_outputs(const std::string &stem, std::size_t disks) const {
        if (o_.format == "ova") return {ova_path(stem)};
        std::vector<std::string> out;
        for (std::size_t i = 0; i < disks; ++i) out.push_back(published_disk_path(stem, i + 1));
        if (o_.format == "ovf") {
            out.push_back(fmt::format("{}/{}.mf", o_.output_dir, stem));
            out.push_back(fmt::format("{}/{}.ovf", o_.output_dir, stem));
        }
        if (o_.hyper2kvm_manifest) out.push_back(fmt::format("{}/{}.hyper2kvm.json", o_.output_dir, stem));
        return out;
    }

    Result<DiskJob> make_job(std::size_t i, ExportDisk &source, const std::string &stem) {
        DiskJob j;
        j.index = static_cast<unsigned>(i + 1);
        j.source = &source;
        j.disk = &result_.vm.disks[i];
        j.final_path = disk_path_for(stem, i + 1);
        j.published_path = published_disk_path(stem, i + 1);
        if (converts(o_.format) && sealing()) {
            // Converted into a hidden plain file first, sealed into the published name at the end.
            j.final_path = fmt::format("{}/.{}.hsdk-plain", o_.output_dir, io::base_name(j.published_path));
            plain_.push_back(j.final_path);
        }
        if (source.blocks) {
            OpenOptions open;
            open.format = source.format.empty() ? "raw" : source.format;
            open.open_backing = false;
            auto image = open_image_source(source.blocks, open);
            if (!image) return fail(image.error().with_context(fmt::format("disk {} ({})", j.index, source.label)));
            j.image = std::move(image).value();
            tracker_->disk_total(j.index, j.image->virtual_size());
        } else if (source.stream) {
            if (converts(o_.format) && source.streamable) j.conversion = make_conversion(j.final_path);
            if (source.expected_bytes > 0) tracker_->disk_total(j.index, source.expected_bytes);
        } else {
            return fail(Errc::internal, fmt::format("provider '{}' handed over disk {} without blocks or a stream", o_.provider, j.index));
        }
        return j;
    }

    // The troubleshooting guide's rule: an export needs about 1.2 x the disks' size free. A disk
    // counts with what its provider knows of its data (the platform's figure, a stream's length,
    // a block source's allocated bytes); bytes a resumed download already holds count as there.
    Result<void> check_space(const std::vector<DiskJob> &jobs) const {
        std::uint64_t disks_bytes = 0, present = 0;
        for (const auto &j : jobs) {
            const ExportDisk &d = *j.source;
            if (d.data_bytes > 0) disks_bytes += d.data_bytes;
            else if (d.expected_bytes > 0) disks_bytes += d.expected_bytes;
            else if (d.blocks) disks_bytes += d.blocks->allocated_size().value_or(d.blocks->size());
            else log(LogLevel::debug, fmt::format("export: {} says nothing of its size; the space check leaves it out", d.label));
            struct stat st {};
            if (d.stream && o_.resume && ::stat(exporter::partial_path_for(j.final_path).c_str(), &st) == 0)
                present += static_cast<std::uint64_t>(st.st_size);
        }
        struct statvfs vfs {};
        if (::statvfs(o_.output_dir.c_str(), &vfs) != 0) return success();  // nothing to go by: let the writes tell
        const std::uint64_t free_bytes = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
        const std::uint64_t estimate = disks_bytes + disks_bytes / 5;
        const std::uint64_t needed = estimate > present ? estimate - present : 0;
        if (needed <= free_bytes) return success();
        return fail(Errc::no_space, fmt::format("not enough space in '{}': the export needs about {} bytes ({}, 1.2 x the disks' {} "
                                                "bytes), {} bytes ({}) are free; free some, choose another output folder, or "
                                                "skip this check (--no-space-check)",
                                                o_.output_dir, needed, human(needed), disks_bytes, free_bytes, human(free_bytes)));
    }

    std::unique_ptr<exporter::StreamedConversion> make_conversion(const std::string &destination) const {
        exporter::StreamedConversionOptions so;
        so.destination = destination;
        so.format = o_.format;
        so.format_options = o_.format_options;
        so.compress = o_.compress;
        so.threads = o_.threads;
        return std::make_unique<exporter::StreamedConversion>(std::move(so));
    }

    // Disks move at most o_.parallel at once, on this thread and on free job slots of the executor.
    Result<void> transfer_all(std::vector<DiskJob> &jobs) {
        std::mutex m;
        std::optional<Error> first_error;
        auto disk = [&](std::size_t i) {
            {
                std::lock_guard lock(m);
                if (first_error) return;
            }
            DiskJob &j = jobs[i];
            tracker_->disk_started(j.index);
            auto r = j.image ? convert_blocks(j) : receive_stream(j);
            std::lock_guard lock(m);
            if (!r && !first_error) first_error = r.error().with_context(fmt::format("disk {} of {}", j.index, jobs.size()));
        };
        for (const auto &j : jobs)
            if (!j.image) partials_.push_back(j.final_path);
        core::run_parallel(jobs.size(), std::max(1u, o_.parallel), disk);
        if (first_error) return fail(*first_error);
        return success();
    }

    Result<void> receive_stream(DiskJob &j) {
        exporter::DownloadRequest rq;
        rq.stream = j.source->stream.get();
        rq.label = j.source->label;
        rq.final_path = j.final_path;
        rq.identity = j.source->identity;
        rq.resume = o_.resume;
        rq.retry = {std::max(1u, j.source->max_attempts), j.source->initial_backoff, j.source->max_backoff};
        rq.cancel = o_.cancel;
        const unsigned idx = j.index;
        rq.on_bytes = [this, idx](std::uint64_t n, bool restarted) {
            if (restarted) tracker_->disk_restarted(idx);
            else tracker_->disk_bytes(idx, n);
        };
        rq.on_resumed = [this, idx](std::uint64_t n) { tracker_->disk_resumed(idx, n); };
        rq.on_total = [this, idx](std::uint64_t t) { tracker_->disk_total(idx, t); };
        if (j.conversion) {
            auto *conv = j.conversion.get();
            rq.consume = [conv](std::span<const std::byte> data) { return conv->feed(data); };
            rq.restart_consumer = [conv] { return conv->restart(); };
            // Resumable only when asked: the received stream is then also kept on disk.
            rq.keep_partial = o_.resume;
            // The converted disk is what gets published (and hashed for a manifest, if any), not
            // the stream that arrived: SHA-1 for the server's manifest is all the stream needs.
            rq.sha256 = false;
        }
        HSDK_TRY(j.result, exporter::download_resumable(rq));
        tracker_->disk_total(idx, j.result.size);
        j.ready_path = j.result.partial_path;
        j.ready_bytes = j.result.size;
        j.ready_sha256 = j.result.sha256;
        std::lock_guard lock(totals_mutex_);
        result_.bytes_received += j.result.received;
        result_.bytes_resumed += j.result.resumed;
        return success();
    }

    // A disk readable at any offset: converted from its image straight into the disk format
    // (stream-optimized VMDK for packages), under a hidden name until everything is done.
    Result<void> convert_blocks(DiskJob &j) {
        const std::string disk_format = converts(o_.format) ? o_.format : "vmdk";
        j.ready_path = fmt::format("{}/.{}.hsdk-export", o_.output_dir, io::base_name(j.final_path));
        {
            std::lock_guard lock(totals_mutex_);
            staged_.push_back(j.ready_path);
        }
        ::unlink(j.ready_path.c_str());
        ConvertOptions co;
        co.output_format = disk_format;
        co.format_options = o_.format_options;
        const bool has_subformat = std::any_of(co.format_options.begin(), co.format_options.end(),
                                               [](const auto &kv) { return kv.first == "subformat"; });
        if (disk_format == "vmdk" && !has_subformat) co.format_options.emplace_back("subformat", "streamOptimized");
        co.compress = o_.compress;
        co.threads = o_.threads;
        co.requests_in_flight = j.source->requests_in_flight;
        co.cancel = o_.cancel;
        co.overwrite = true;
        std::uint64_t reported = 0;
        const unsigned idx = j.index;
        co.progress = [this, idx, &reported](const ProgressInfo &p) {
            if (p.bytes_done > reported) {
                tracker_->disk_bytes(idx, p.bytes_done - reported);
                reported = p.bytes_done;
            }
            return o_.cancel.is_cancelled() ? ProgressAction::cancel : ProgressAction::proceed;
        };
        auto stats = convert(*j.image, j.ready_path, co);
        if (!stats) return fail(stats.error());
        j.ready_bytes = stats.value().output_size;
        if (o_.format == "ova" || o_.format == "ovf") {
            HSDK_TRY(j.ready_sha256, file_digest_hex(j.ready_path, DigestAlgorithm::sha256, o_.cancel));
        }
        std::lock_guard lock(totals_mutex_);
        result_.bytes_received += stats.value().bytes_read;
        return success();
    }

    // The package must describe the bytes it holds: take the capacity from the VMDK that arrived
    // when it differs from the VM's configuration (a warning, since that should not happen).
    void reconcile_capacity(DiskJob &j, std::uint64_t sent_capacity) {
        if (sent_capacity == 0 || sent_capacity == j.disk->capacity_bytes) return;
        if (j.disk->capacity_bytes != 0)
            log(LogLevel::warn, fmt::format("export: disk {} is configured as {} bytes but the source sent a disk of {} bytes; "
                                            "describing what was sent",
                                            j.index, j.disk->capacity_bytes, sent_capacity));
        j.disk->capacity_bytes = sent_capacity;
    }

    static std::uint64_t vmdk_capacity(const std::string &path) {
        auto f = io::File::open_read(path);
        if (!f) return 0;
        std::array<std::byte, 512> sector{};
        if (!f.value().read_exact(0, sector) || !format::vmdk::has_kdmv_magic(sector)) return 0;
        return format::vmdk::parse_sparse_header(sector).capacity * format::vmdk::sector_size;
    }

    void record_disk(DiskJob &j, const std::string &file, const std::string &file_format) {
        j.disk->file = file;
        j.disk->file_format = file_format;
        j.disk->file_bytes = j.ready_bytes;
        j.disk->sha256 = j.ready_sha256;
    }

    Result<void> publish(std::vector<DiskJob> &jobs, const std::string &stem) {
        if (converts(o_.format)) return publish_conversions(jobs);
        tracker_->phase("manifest");
        for (auto &j : jobs) reconcile_capacity(j, j.image ? j.image->virtual_size() : vmdk_capacity(j.ready_path));
        HSDK_TRYV(seal_package_disks(jobs));
        for (auto &j : jobs) record_disk(j, o_.format == "vmdk" ? j.final_path : io::base_name(j.final_path), "vmdk");
        if (o_.format == "vmdk") return publish_disks(jobs);
        // The descriptor comes from the VM's description, with the disks as they arrived.
        const std::string member_compression = disk_compression().empty() ? "" : "gzip";
        std::vector<exporter::PackagedDisk> disks;
        for (const auto &j : jobs)
            disks.push_back(exporter::PackagedDisk{io::base_name(j.final_path), o_.format == "ovf" ? j.final_path : j.ready_path,
                                                   j.ready_bytes, j.ready_sha256, member_compression});
        if (o_.format == "ovf") HSDK_TRYV(publish_disks(jobs));
        // A whole-OVA compression packs under a hidden name first and compresses that.
        const std::string packed_ova =
            whole_ova_compressed() ? fmt::format("{}/.{}.ova.hsdk-plain", o_.output_dir, stem) : std::string();
        if (!packed_ova.empty()) plain_.push_back(packed_ova);
        auto written = exporter::write_package(result_.vm, disks, o_.format, o_.output_dir, stem, o_.cancel, packed_ova);
        if (written && !packed_ova.empty()) {
            if (auto sealed = seal(packed_ova, ova_path(stem), o_.compression, nullptr); !sealed) written = fail(sealed.error());
            else written = std::vector<std::string>{ova_path(stem)};
            ::unlink(packed_ova.c_str());
        }
        if (!written) {
            // Disks without their descriptor are no finished OVF folder.
            if (o_.format == "ovf")
                for (const auto &j : jobs) ::unlink(j.final_path.c_str());
            return fail(written.error());
        }
        if (o_.format == "ova") {
            // The disks now live inside the OVA: their received or staged files go.
            for (const auto &j : jobs) exporter::discard_partial(j.final_path);
            for (const auto &s : staged_) ::unlink(s.c_str());
            partials_.clear();
            staged_.clear();
        }
        result_.files.insert(result_.files.end(), written.value().begin(), written.value().end());
        return success();
    }

    // Converted disks: flushed, then renamed into place together once everything checked out.
    Result<void> publish_conversions(std::vector<DiskJob> &jobs) {
        tracker_->phase("converting");
        for (auto &j : jobs) {
            if (j.conversion) {
                auto flushed = j.conversion->finish();
                if (!flushed) {
                    corrupt_ = true;
                    return fail(flushed.error().with_context(fmt::format("disk {}", j.index)));
                }
            } else if (!j.image) {
                HSDK_TRYV(convert_received(j));  // a stream kept whole (a datastore file): convert it now
            }
        }
        for (auto &j : jobs) {
            if (j.conversion) {
                reconcile_capacity(j, j.conversion->virtual_size());
                HSDK_TRYV(j.conversion->commit());
                exporter::discard_partial(j.final_path);  // the stream kept for --resume, if any
            } else if (j.image) {
                reconcile_capacity(j, j.image->virtual_size());
                if (std::rename(j.ready_path.c_str(), j.final_path.c_str()) != 0)
                    return fail(io::errno_error(errno, "cannot rename into place", j.final_path));
            }
            if (j.published_path != j.final_path) {
                // Sealed: the plain conversion goes into the published name, then away.
                auto sealed = seal(j.final_path, j.published_path, disk_compression(), encryption());
                ::unlink(j.final_path.c_str());
                if (!sealed) return fail(sealed.error().with_context(fmt::format("disk {}", j.index)));
                HSDK_TRY(j.disk->sha256, file_digest_hex(j.published_path, DigestAlgorithm::sha256, o_.cancel));
                j.disk->file = j.published_path;
                j.disk->file_format = o_.format;
                j.disk->file_bytes = sealed.value().bytes;
                result_.files.push_back(j.published_path);
                continue;
            }
            j.disk->file = j.final_path;
            j.disk->file_format = o_.format;
            std::error_code ec;
            j.disk->file_bytes = std::filesystem::file_size(j.final_path, ec);
            j.disk->sha256.clear();  // of the bytes that arrived, not of this file
            result_.files.push_back(j.final_path);
        }
        partials_.clear();
        staged_.clear();
        return success();
    }

    Result<void> convert_received(DiskJob &j) {
        ConvertOptions co;
        co.output_format = o_.format;
        co.format_options = o_.format_options;
        co.compress = o_.compress;
        co.threads = o_.threads;
        co.overwrite = true;
        co.cancel = o_.cancel;
        OpenOptions src;
        src.format = j.source->format;
        src.open_backing = false;
        auto converted = convert(j.ready_path, src, j.final_path, co);
        if (!converted) return fail(converted.error().with_context(fmt::format("converting disk {}", j.index)));
        exporter::discard_partial(j.final_path);
        return success();
    }

    // The disks appear under their final names together, only once everything checked out.
    Result<void> publish_disks(std::vector<DiskJob> &jobs) {
        for (auto &j : jobs) {
            if (std::rename(j.ready_path.c_str(), j.final_path.c_str()) != 0)
                return fail(io::errno_error(errno, "cannot rename into place", j.final_path));
            ::unlink(exporter::state_path_for(j.final_path).c_str());
            result_.files.push_back(j.final_path);
        }
        partials_.clear();
        staged_.clear();
        return success();
    }

    void start_keepalive() {
        const auto every = export_->keepalive_interval();
        if (every.count() <= 0) return;
        // A periodic task of the executor: a lease must not expire during long transfers.
        keepalive_ = core::Executor::instance().every(every, [this] { export_->keepalive(tracker_->percent()); });
    }

    void stop_keepalive() {
        if (keepalive_) keepalive_->cancel();
        keepalive_.reset();
    }

    void cleanup_after_failure(Error &e) {
        stop_keepalive();
        if (tracker_) tracker_->phase("cleanup");
        std::vector<std::string> notes;
        if (export_) notes = export_->abort(e.message);
        export_.reset();
        session_.reset();  // logs out
        for (const auto &p : staged_) ::unlink(p.c_str());
        for (const auto &p : plain_) ::unlink(p.c_str());
        // Bytes that arrived stay as resumable state unless they are known to be bad.
        const bool keep = !corrupt_ && (e.code == Errc::cancelled || e.code == Errc::network_error || e.code == Errc::timeout ||
                                        e.code == Errc::remote_error || e.code == Errc::no_space || e.code == Errc::io_error);
        bool kept = false;
        for (const auto &p : partials_) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(exporter::partial_path_for(p), ec);
            if (!keep || ec || size == 0) exporter::discard_partial(p);
            else kept = true;
        }
        if (kept && e.code != Errc::cancelled) notes.push_back("partial data kept next to the output; run again with resume to continue");
        for (const auto &n : notes) e.message += "; " + n;
    }

    ExportOptions &o_;
    ExportResult result_;
    std::unique_ptr<exporter::ExportProgressTracker> tracker_;
    std::unique_ptr<ProviderSession> session_;
    std::unique_ptr<PreparedExport> export_;
    std::vector<std::string> partials_;  // final paths of streamed disks whose partial data may exist
    std::vector<std::string> staged_;    // block disks converted under hidden names
    std::vector<std::string> plain_;     // plain files of sealed outputs (removed whatever happens)
    std::mutex totals_mutex_;
    bool corrupt_ = false;
    std::unique_ptr<core::Executor::Periodic> keepalive_;
};

}  // namespace

std::vector<std::string> export_formats() { return all_formats(); }

ExportSession::ExportSession(ExportOptions options) : options_(std::move(options)) {
    // One token for everything: the session's own calls and the caller's cancel.
    options_.connection.cancel = options_.cancel;
}

ExportSession::~ExportSession() = default;

void ExportSession::cancel() noexcept { options_.cancel.cancel(); }

Result<ExportResult> ExportSession::run() {
    Runner runner(options_);
    return runner.run();
}

}  // namespace hypersdk
