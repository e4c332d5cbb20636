// ExportSession: vSphere VM -> files, through an NFC lease (ExportVm for a powered-off VM,
// CreateSnapshot + ExportSnapshot for a running one) or datastore downloads.
#include "core/executor.hpp"
#include "export/download.hpp"
#include "export/package.hpp"
#include "export/provider_export.hpp"
#include "export/progress.hpp"
#include "export/streamed_conversion.hpp"
#include "format/vmdk/sparse_header.hpp"
#include "providers/vsphere/discovery.hpp"
#include "providers/vsphere/lease.hpp"

#include "io/atomic_output.hpp"

#include <hypersdk/export.hpp>
#include <hypersdk/hash.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/ovf.hpp>

#include <fmt/format.h>

#include "io/file.hpp"

#include <array>
#include <atomic>
#include <cctype>
#include <cstring>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <unistd.h>

namespace hypersdk {
namespace {

using namespace vsphere;
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

// Formats the disks are converted into as they arrive (the others keep the VMDK the server sends).
bool converts(const std::string &format) { return format != "vmdk" && format != "ova" && format != "ovf"; }

bool is_missing_method(const Error &e) {
    return e.message.find("MethodNotFound") != std::string::npos || e.message.find("fault NotSupported") != std::string::npos ||
           e.message.find("fault NotImplemented") != std::string::npos;
}

struct DiskJob {
    unsigned index = 0;  // 1-based
    VmDisk *disk = nullptr;
    std::string device_key;
    std::string url;
    io::http::Client *client = nullptr;
    std::string final_path;   // the downloaded VMDK's name (or, when converting, the converted disk's)
    DownloadResult result;
    std::unique_ptr<exporter::StreamedConversion> conversion;  // set when converting on the fly
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
        return std::move(result_);
    }

private:
    Result<void> body() {
        HSDK_TRYV(check_format(o_.format));
        if (o_.vm.empty()) return fail(Errc::invalid_argument, "no VM given (inventory path such as /DC0/vm/name)");
        if (o_.output_dir.empty()) return fail(Errc::invalid_argument, "no output folder given");
        std::error_code ec;
        std::filesystem::create_directories(o_.output_dir, ec);
        if (ec) return fail(io::errno_error(ec.value(), "cannot create the output folder", o_.output_dir));

        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel, 0);
        tracker_->phase("connecting");
        HSDK_TRY(session_, Session::open(o_.connection));
        HSDK_TRY(found_, discover_vm(*session_, o_.vm));
        result_.vm = found_.vm;
        const std::string stem = exporter::file_stem(found_.vm.name);
        for (const auto &path : planned_outputs(stem)) {
            if (!o_.overwrite && std::filesystem::exists(path))
                return fail(Errc::conflict, fmt::format("output '{}' already exists (overwrite not allowed)", path));
        }
        if (result_.vm.disks.empty()) return fail(Errc::invalid_argument, fmt::format("VM '{}' has no disks to export", o_.vm));
        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel,
                                                                     static_cast<unsigned>(result_.vm.disks.size()));

        const bool powered_off = found_.vm.power_state == "poweredOff";
        if (o_.transport == ExportTransport::datastore) return export_from_datastore(stem, powered_off);

        if (!powered_off) HSDK_TRYV(take_snapshot());
        auto leased = powered_off ? export_vm(*session_, found_.ref) : export_snapshot(*session_, snapshot_);
        if (!leased) {
            if (o_.transport == ExportTransport::automatic && is_missing_method(leased.error())) {
                log(LogLevel::warn, "export: the server cannot export through a lease; downloading from the datastore");
                return export_from_datastore(stem, powered_off);
            }
            return fail(leased.error());
        }
        lease_ = leased.value();
        result_.method = powered_off ? "ExportVm" : "ExportSnapshot";
        HSDK_TRY(auto info, wait_lease_ready(*session_, lease_));

        std::vector<DiskJob> jobs;
        unsigned n = 0;
        for (const auto &dev : info.devices) {
            if (!dev.disk) continue;
            if (n >= result_.vm.disks.size())
                return fail(Errc::remote_error, "the lease offers more disks than the VM has");
            DiskJob j;
            j.index = n + 1;
            j.disk = &result_.vm.disks[n];
            j.device_key = dev.key;
            j.url = dev.url;
            HSDK_TRY(j.client, client_for(dev));
            j.final_path = disk_path_for(stem, n + 1);
            if (converts(o_.format)) j.conversion = make_conversion(j.final_path);
            if (dev.file_size > 0) tracker_->disk_total(j.index, dev.file_size);
            jobs.push_back(std::move(j));
            ++n;
        }
        if (jobs.size() != result_.vm.disks.size())
            return fail(Errc::remote_error, fmt::format("the lease offers {} disks but the VM has {}", jobs.size(), result_.vm.disks.size()));

        (void)lease_progress(*session_, lease_, 0);
        start_keepalive(info.timeout_seconds);
        auto downloaded = download_all(jobs, powered_off, "nfc");
        stop_keepalive();
        HSDK_TRYV(downloaded);

        tracker_->phase("manifest");
        HSDK_TRY(auto manifest, lease_manifest(*session_, lease_));
        HSDK_TRYV(check_manifest(jobs, manifest));
        HSDK_TRYV(o_.cancel.check());
        (void)lease_progress(*session_, lease_, 100);
        HSDK_TRYV(lease_complete(*session_, lease_));
        lease_ = {};
        HSDK_TRYV(publish(jobs, stem));
        return finish_cleanup();
    }

    std::string disk_path_for(const std::string &stem, std::size_t n) const {
        const std::string ext = converts(o_.format) ? o_.format : "vmdk";
        return fmt::format("{}/{}-disk{}.{}", o_.output_dir, stem, n, ext);
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

    Result<void> take_snapshot() {
        tracker_->phase("snapshot");
        static thread_local std::mt19937_64 rng{std::random_device{}()};
        const std::string name = fmt::format("hypersdk-export-{:08x}", rng() & 0xffffffffU);
        auto snap = create_snapshot(*session_, found_.ref, name, o_.quiesce);
        if (!snap) return fail(snap.error().with_context("creating the export snapshot"));
        snapshot_ = snap.value();
        result_.snapshot_used = true;
        return success();
    }

    // Lease URLs on the server itself use the session's client; another host (vCenter handing
    // out an ESXi URL) gets its own TLS check, pinned to the thumbprint the lease names when it is
    // a SHA-256 one.
    Result<io::http::Client *> client_for(const LeaseDevice &dev) {
        const auto scheme = dev.url.find("://");
        const auto host_start = scheme == std::string::npos ? 0 : scheme + 3;
        const std::string host = dev.url.substr(host_start, dev.url.find('/', host_start) - host_start);
        io::http::ClientOptions co = session_->http().options();
        co.request_timeout = std::chrono::seconds(0);
        if (host != session_->host() && !dev.ssl_thumbprint.empty() && !o_.connection.insecure) {
            if (auto t = io::http::normalize_thumbprint(dev.ssl_thumbprint)) {
                co.tls.thumbprint_sha256 = t.value();
                co.tls.ca_file.clear();
            }
        }
        clients_.push_back(session_->http().derive(co));
        return clients_.back().get();
    }

    nlohmann::json identity(const DiskJob &j, bool powered_off, const char *source) const {
        nlohmann::json id = {{"vm", found_.vm.instance_uuid.empty() ? found_.vm.uuid : found_.vm.instance_uuid},
                             {"vm_id", found_.vm.id},
                             {"disk", j.disk->id},
                             {"backing", j.disk->backing_file},
                             {"capacity", j.disk->capacity_bytes},
                             {"change_id", j.disk->change_id},
                             {"source", source}};
        // A running VM is exported from a new snapshot each time: bytes from an earlier run show
        // another point in time, so its state never matches.
        if (!powered_off) id["run"] = fmt::format("{:016x}", std::random_device{}());
        return id;
    }

    Result<void> download_all(std::vector<DiskJob> &jobs, bool powered_off, const char *source) {
        std::mutex m;
        std::optional<Error> first_error;
        // Disks move at most o_.parallel at once, on this thread and on free job slots of the executor.
        auto disk = [&](std::size_t i) {
            {
                {
                    std::lock_guard lock(m);
                    if (first_error) return;
                }
                DiskJob &j = jobs[i];
                exporter::DownloadRequest rq;
                rq.client = j.client;
                rq.url = j.url;
                rq.final_path = j.final_path;
                rq.identity = identity(j, powered_off, source);
                rq.resume = o_.resume;
                rq.retry = session_->retry_policy();
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
                }
                tracker_->disk_started(idx);
                auto r = exporter::download_resumable(rq);
                std::lock_guard lock(m);
                if (!r) {
                    if (!first_error) first_error = r.error().with_context(fmt::format("disk {} of {}", idx, jobs.size()));
                    return;
                }
                j.result = std::move(r).value();
                tracker_->disk_total(idx, j.result.size);
                result_.bytes_received += j.result.received;
                result_.bytes_resumed += j.result.resumed;
            }
        };
        core::run_parallel(jobs.size(), std::max(1u, o_.parallel), disk);
        for (std::size_t i = 0; i < jobs.size(); ++i) partials_.push_back(jobs[i].final_path);
        if (first_error) return fail(*first_error);
        return success();
    }

    Result<void> check_manifest(const std::vector<DiskJob> &jobs, const std::vector<LeaseManifestEntry> &manifest) {
        if (manifest.empty()) {
            log(LogLevel::info, "export: the server keeps no manifest for this lease; nothing to check the bytes against");
            return success();
        }
        for (const auto &j : jobs) {
            auto it = std::find_if(manifest.begin(), manifest.end(), [&](const LeaseManifestEntry &m) { return m.key == j.device_key; });
            if (it == manifest.end()) continue;
            if (it->size != j.result.size || it->sha1 != j.result.sha1) {
                corrupt_ = true;
                return fail(Errc::checksum_mismatch,
                            fmt::format("checksum mismatch: disk {} ({}): received {} bytes with SHA-1 {}, the server's manifest "
                                        "says {} bytes with SHA-1 {}",
                                        j.index, j.device_key, j.result.size, j.result.sha1, it->size, it->sha1));
            }
        }
        return success();
    }

    std::vector<std::string> planned_outputs(const std::string &stem) const {
        if (o_.format == "ova") return {fmt::format("{}/{}.ova", o_.output_dir, stem)};
        std::vector<std::string> out;
        for (std::size_t i = 0; i < result_.vm.disks.size(); ++i) out.push_back(disk_path_for(stem, i + 1));
        if (o_.format == "ovf") {
            out.push_back(fmt::format("{}/{}.mf", o_.output_dir, stem));
            out.push_back(fmt::format("{}/{}.ovf", o_.output_dir, stem));
        }
        return out;
    }

    // The package must describe the bytes it holds: take the capacity from the VMDK the server sent
    // when it differs from the VM's configuration (a warning, since that should not happen).
    void reconcile_capacity(DiskJob &j, std::uint64_t sent_capacity) {
        if (sent_capacity == 0 || sent_capacity == j.disk->capacity_bytes) return;
        log(LogLevel::warn, fmt::format("export: disk {} is configured as {} bytes but the server sent a disk of {} bytes; "
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

    void record_disk(DiskJob &j, const std::string &file) {
        j.disk->file = file;
        j.disk->file_format = "vmdk";
        j.disk->file_bytes = j.result.size;
        j.disk->sha256 = j.result.sha256;
    }

    Result<void> publish(std::vector<DiskJob> &jobs, const std::string &stem) {
        if (o_.format == "vmdk") return publish_disks(jobs);
        if (converts(o_.format)) return publish_conversions(jobs);
        tracker_->phase("manifest");
        // The descriptor comes from the VM's properties (the hardware discovery read), with the
        // disks as the server streamed them.
        for (auto &j : jobs) {
            reconcile_capacity(j, vmdk_capacity(j.result.partial_path));
            record_disk(j, io::base_name(j.final_path));
        }
        std::vector<exporter::PackagedDisk> disks;
        for (const auto &j : jobs)
            disks.push_back(exporter::PackagedDisk{io::base_name(j.final_path), o_.format == "ovf" ? j.final_path : j.result.partial_path,
                                                   j.result.size, j.result.sha256});
        if (o_.format == "ovf") HSDK_TRYV(publish_disks(jobs));
        HSDK_TRY(auto written, exporter::write_package(result_.vm, disks, o_.format, o_.output_dir, stem, o_.cancel));
        if (o_.format == "ova") {
            for (const auto &j : jobs) exporter::discard_partial(j.final_path);
            partials_.clear();
        }
        result_.files.insert(result_.files.end(), written.begin(), written.end());
        return success();
    }

    // Converted disks: flushed, then renamed into place together once everything checked out.
    Result<void> publish_conversions(std::vector<DiskJob> &jobs) {
        tracker_->phase("converting");
        for (auto &j : jobs) {
            if (!j.conversion) {
                // A datastore download: a hosted sparse VMDK, converted from its partial file.
                HSDK_TRYV(convert_partial(j));
                continue;
            }
            auto flushed = j.conversion->finish();
            if (!flushed) {
                corrupt_ = true;
                return fail(flushed.error().with_context(fmt::format("disk {}", j.index)));
            }
        }
        for (auto &j : jobs) {
            if (j.conversion) {
                reconcile_capacity(j, j.conversion->virtual_size());
                HSDK_TRYV(j.conversion->commit());
                exporter::discard_partial(j.final_path);  // the stream kept for --resume, if any
            }
            j.disk->file = j.final_path;
            j.disk->file_format = o_.format;
            std::error_code ec;
            j.disk->file_bytes = std::filesystem::file_size(j.final_path, ec);
            j.disk->sha256.clear();  // of the VMDK stream, not of this file
            result_.files.push_back(j.final_path);
        }
        partials_.clear();
        return success();
    }

    // Datastore transport: the disk arrived as its datastore file (not a stream): convert it now.
    Result<void> convert_partial(DiskJob &j) {
        ConvertOptions co;
        co.output_format = o_.format;
        co.format_options = o_.format_options;
        co.compress = o_.compress;
        co.threads = o_.threads;
        co.overwrite = true;
        co.cancel = o_.cancel;
        OpenOptions src;
        src.format = "vmdk";
        auto converted = convert(j.result.partial_path, src, j.final_path, co);
        if (!converted) return fail(converted.error().with_context(fmt::format("converting disk {}", j.index)));
        exporter::discard_partial(j.final_path);
        return success();
    }

    // The disks appear under their final names together, only once everything checked out.
    Result<void> publish_disks(std::vector<DiskJob> &jobs) {
        for (auto &j : jobs) {
            if (std::rename(j.result.partial_path.c_str(), j.final_path.c_str()) != 0)
                return fail(io::errno_error(errno, "cannot rename into place", j.final_path));
            ::unlink(exporter::state_path_for(j.final_path).c_str());
            if (o_.format == "vmdk") record_disk(j, j.final_path);
            result_.files.push_back(j.final_path);
        }
        partials_.clear();
        return success();
    }

    Result<void> export_from_datastore(const std::string &stem, bool powered_off) {
        result_.method = "datastore";
        // The base disks of a running VM stop changing once a snapshot sits on top of them.
        if (!powered_off && snapshot_.empty()) HSDK_TRYV(take_snapshot());
        std::vector<DiskJob> jobs;
        for (std::size_t i = 0; i < result_.vm.disks.size(); ++i) {
            VmDisk &d = result_.vm.disks[i];
            auto [ds, path] = split_datastore_path(d.backing_file);
            if (ds.empty() || path.empty())
                return fail(Errc::unsupported, fmt::format("unsupported: disk '{}' has no datastore path to download", d.label));
            DiskJob j;
            j.index = static_cast<unsigned>(i + 1);
            j.disk = &d;
            j.device_key = d.id;
            j.url = fmt::format("{}/folder/{}?dcPath={}&dsName={}", session_->server(), io::http::percent_encode(path, true),
                                io::http::percent_encode(found_.datacenter_path, true), io::http::percent_encode(ds, false));
            j.client = session_->http().derive([&] {
                auto co = session_->http().options();
                co.request_timeout = std::chrono::seconds(0);
                return co;
            }()).release();
            owned_.emplace_back(j.client);
            j.final_path = disk_path_for(stem, i + 1);
            jobs.push_back(std::move(j));
        }
        HSDK_TRYV(download_all(jobs, powered_off, "datastore"));
        for (const auto &j : jobs) HSDK_TRYV(check_single_file_vmdk(j));
        HSDK_TRYV(publish(jobs, stem));
        return finish_cleanup();
    }

    // A text descriptor names extent files that a datastore download would also need: that
    // layout goes through the VMDK module, which this build does not have.
    Result<void> check_single_file_vmdk(const DiskJob &j) {
        auto f = io::File::open_read(j.result.partial_path);
        if (!f) return fail(f.error());
        std::array<std::byte, 4> magic{};
        if (j.result.size >= 4) HSDK_TRYV(f.value().read_exact(0, magic));
        if (std::memcmp(magic.data(), "KDMV", 4) == 0) return success();
        corrupt_ = true;
        return fail_unsupported(fmt::format("disk {} ({}) is not a single-file (sparse) VMDK on the datastore; "
                                            "descriptor + extent layouts need the VMDK module, or use the NFC transport",
                                            j.index, j.disk->backing_file));
    }

    Result<void> finish_cleanup() {
        tracker_->phase("cleanup");
        if (!snapshot_.empty()) {
            auto removed = remove_snapshot(*session_, snapshot_);
            if (!removed) return fail(removed.error().with_context("removing the export snapshot"));
            snapshot_ = {};
        }
        (void)session_->logout();
        return success();
    }

    void start_keepalive(int lease_timeout_seconds) {
        // HttpNfcLeaseProgress at least every 60 s (sooner for short lease timeouts) keeps the
        // lease from expiring during long downloads. It runs as a periodic task of the executor.
        const int secs = std::clamp(lease_timeout_seconds > 0 ? lease_timeout_seconds / 3 : 60, 1, 60);
        keepalive_ = core::Executor::instance().every(std::chrono::seconds(secs),
                                                      [this] { (void)lease_progress(*session_, lease_, tracker_->percent()); });
    }

    void stop_keepalive() {
        if (keepalive_) keepalive_->cancel();
        keepalive_.reset();
    }

    void cleanup_after_failure(Error &e) {
        stop_keepalive();
        if (tracker_) tracker_->phase("cleanup");
        std::vector<std::string> notes;
        if (session_ && !lease_.empty()) {
            if (auto a = lease_abort(*session_, lease_, e.message); !a) notes.push_back("could not abort the lease: " + a.error().message);
        }
        if (session_ && !snapshot_.empty()) {
            if (auto r = remove_snapshot(*session_, snapshot_); !r)
                notes.push_back(fmt::format("could not remove snapshot {}: {}", snapshot_.value, r.error().message));
        }
        if (session_) (void)session_->logout();
        // Bytes that arrived stay as resumable state unless they are known to be bad.
        const bool keep = !corrupt_ && (e.code == Errc::cancelled || e.code == Errc::network_error || e.code == Errc::timeout ||
                                        e.code == Errc::remote_error || e.code == Errc::no_space || e.code == Errc::io_error);
        for (const auto &p : partials_) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(exporter::partial_path_for(p), ec);
            if (!keep || ec || size == 0) exporter::discard_partial(p);
        }
        if (keep && !partials_.empty() && e.code != Errc::cancelled)
            notes.push_back("partial data kept next to the output; run again with resume to continue");
        for (const auto &n : notes) e.message += "; " + n;
    }

    ExportOptions &o_;
    ExportResult result_;
    std::unique_ptr<exporter::ExportProgressTracker> tracker_;
    std::unique_ptr<Session> session_;
    FoundVm found_;
    MoRef snapshot_, lease_;
    std::vector<std::unique_ptr<io::http::Client>> clients_;
    std::vector<std::unique_ptr<io::http::Client>> owned_;
    std::vector<std::string> partials_;  // final paths whose partial data may exist
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
    if (options_.provider != "vsphere") return exporter::export_from_provider(options_);
    Runner runner(options_);
    return runner.run();
}

}  // namespace hypersdk
