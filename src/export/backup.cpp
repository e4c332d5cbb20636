// run_backup: one point of a VM in its repository folder: the provider's snapshot and changes,
// each disk's changed ranges read with several requests in flight into a new chain link (a full
// qcow2, or an overlay on the previous link), the snapshot removed, then the links and the state
// published together.
#include "convert/convert_device.hpp"
#include "convert/prefetch.hpp"
#include "core/executor.hpp"
#include "export/download.hpp"
#include "export/streamed_conversion.hpp"
#include "export/backup_state.hpp"
#include "export/connect.hpp"
#include "export/package.hpp"
#include "export/progress.hpp"
#include "io/artifact.hpp"
#include "io/atomic_output.hpp"
#include "io/file.hpp"

#include <hypersdk/backup.hpp>
#include <hypersdk/hash.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/provider.hpp>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk {
namespace {

constexpr std::uint64_t link_cluster = 64 * 1024;  // qcow2's default cluster: the unit changes are read in

class BackupRunner {
public:
    explicit BackupRunner(BackupOptions &o) : o_(o) {}

    Result<BackupResult> run() {
        const auto started = std::chrono::steady_clock::now();
        auto r = body();
        if (!r) {
            Error e = r.error();
            stop_keepalive();
            if (tracker_) tracker_->phase("cleanup");
            if (prepared_)
                for (const auto &n : prepared_->abort(e.message)) e.message += "; " + n;
            for (const auto &s : staged_) ::unlink(s.c_str());
            for (const auto &s : staged_extra_) ::unlink(s.c_str());
            return fail(e);
        }
        result_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        log(LogLevel::info, fmt::format("backup: {} point {} ({}) of '{}': {} bytes read, {:.1f} s", result_.folder, result_.point,
                                        result_.kind, o_.vm, result_.bytes_read, result_.seconds));
        return std::move(result_);
    }

private:
    Result<std::unique_ptr<ProviderSession>> connect() {
        return exporter::connect_provider(o_.provider, o_.provider_config, o_.connection, o_.cancel);
    }

    Result<void> body() {
        if (o_.vm.empty()) return fail(Errc::invalid_argument, "no VM given");
        if (o_.repo.empty()) return fail(Errc::invalid_argument, "no repository folder given");
        if (o_.encryption) HSDK_TRYV(io::check_artifact_options({}, &*o_.encryption));
        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel, 0);
        tracker_->phase("connecting");
        HSDK_TRY(session_, connect());
        HSDK_TRY(auto described, session_->describe(o_.vm));
        if (described.disks.empty()) return fail(Errc::invalid_argument, fmt::format("VM '{}' has no disks to back up", o_.vm));
        const std::string stem = exporter::file_stem(described.name.empty() ? o_.vm : described.name);
        folder_ = o_.repo + "/" + stem;
        std::error_code ec;
        std::filesystem::create_directories(folder_, ec);
        if (ec) return fail(io::errno_error(ec.value(), "cannot create the repository folder", folder_));
        HSDK_TRY(auto loaded, backup::load_state(folder_));
        if (loaded) {
            state_ = std::move(*loaded);
            HSDK_TRYV(backup::check_same_vm(state_, described, folder_));
        }

        BackupPlan plan;
        plan.quiesce = o_.quiesce;
        plan.cancel = o_.cancel;
        plan.phase = [this](const std::string &p) { tracker_->phase(p); };
        if (!o_.full)
            for (const auto &d : described.disks)
                if (const auto *prev = previous_link(d.id)) plan.previous_change_ids[d.id] = prev->change_id;
        HSDK_TRY(prepared_, session_->prepare_backup(o_.vm, described, plan));
        result_.vm = prepared_->vm();
        result_.snapshot = prepared_->snapshot();
        result_.folder = folder_;
        result_.point = std::to_string(state_.next_point);
        auto &disks = prepared_->disks();
        tracker_ = std::make_unique<exporter::ExportProgressTracker>(o_.progress, o_.cancel, static_cast<unsigned>(disks.size()));
        start_keepalive();
        for (std::size_t i = 0; i < disks.size(); ++i) {
            HSDK_TRY(auto written, back_up_disk(i, disks[i], stem));
            result_.bytes_read += written.bytes_read;
            result_.disks.push_back(std::move(written));
        }
        stop_keepalive();
        for (const auto &s : staged_extra_) ::unlink(s.c_str());
        staged_extra_.clear();
        HSDK_TRYV(o_.cancel.check());
        tracker_->phase("cleanup");
        HSDK_TRYV(prepared_->complete());
        prepared_.reset();

        // The links appear, then the state that names them.
        for (std::size_t i = 0; i < result_.disks.size(); ++i) {
            const std::string final_path = folder_ + "/" + result_.disks[i].file;
            if (std::rename(staged_[i].c_str(), final_path.c_str()) != 0)
                return fail(io::errno_error(errno, "cannot put the backup link in place", final_path));
        }
        staged_.clear();
        backup::Point point;
        point.id = result_.point;
        point.created = backup::utc_now_iso8601();
        point.snapshot = result_.snapshot;
        point.disks = result_.disks;
        const bool all_full = std::all_of(point.disks.begin(), point.disks.end(), [](const BackupDiskResult &d) { return d.full; });
        point.kind = result_.kind = all_full ? "full" : "incremental";
        if (state_.points.empty()) state_.vm = backup::identity_of(result_.vm);
        state_.description = to_json(result_.vm);
        state_.points.push_back(std::move(point));
        ++state_.next_point;
        HSDK_TRYV(backup::save_state(folder_, state_));
        for (auto &d : result_.disks) d.file = folder_ + "/" + d.file;
        return success();
    }

    void start_keepalive() {
        const auto every = prepared_->keepalive_interval();
        if (every.count() <= 0) return;
        keepalive_ = core::Executor::instance().every(every, [this] { prepared_->keepalive(tracker_->percent()); });
    }

    void stop_keepalive() {
        if (keepalive_) keepalive_->cancel();
        keepalive_.reset();
    }

    // The newest recorded link of a disk whose file is still there.
    const BackupDiskResult *previous_link(const std::string &disk_id) const {
        for (auto p = state_.points.rbegin(); p != state_.points.rend(); ++p)
            for (const auto &d : p->disks)
                if (d.disk_id == disk_id) {
                    struct stat st {};
                    return ::stat((folder_ + "/" + d.file).c_str(), &st) == 0 ? &d : nullptr;
                }
        return nullptr;
    }

    Result<BackupDiskResult> back_up_disk(std::size_t i, BackupDisk &d, const std::string &stem) {
        const unsigned index = static_cast<unsigned>(i + 1);
        BackupDiskResult out;
        out.disk_id = d.disk_id;
        out.label = i < result_.vm.disks.size() ? result_.vm.disks[i].label : std::string();
        out.change_id = d.change_id;
        out.capacity = d.capacity;
        out.notice = d.notice;
        out.file = fmt::format("{}-disk{}.{}.qcow2", stem, index, result_.point);
        const std::string staged = fmt::format("{}/.{}.hsdk-backup", folder_, out.file);
        ::unlink(staged.c_str());
        staged_.push_back(staged);

        std::unique_ptr<Image> image;
        if (d.source.blocks) {
            OpenOptions open;
            open.format = d.source.format;
            HSDK_TRY(image, open_image_source(d.source.blocks, open));
        } else if (d.source.stream && d.source.streamable) {
            HSDK_TRY(image, receive_changed_parts(index, d, out));
        } else {
            return fail(Errc::unsupported, fmt::format("unsupported: disk {} comes as a stream that cannot be read as it arrives", index));
        }
        if (out.capacity == 0) out.capacity = image->virtual_size();
        const BackupDiskResult *prev = d.full ? nullptr : previous_link(d.disk_id);
        if (!d.full && prev == nullptr)
            return fail(Errc::internal, fmt::format("disk {}: the provider gave changes, but there is no previous link to apply them to", index));
        // An overlay has its base's size; the changes of a grown disk say nothing of a full copy.
        if (prev != nullptr && prev->capacity != image->virtual_size())
            return fail(Errc::conflict, fmt::format("disk {} changed size since the last point ({} bytes, was {}): run a full backup "
                                                    "(--full) to start a new chain",
                                                    index, image->virtual_size(), prev->capacity));
        const bool full = d.full;
        out.full = full;
        out.changed_bytes = d.changed.bytes();
        tracker_->disk_total(index, out.changed_bytes);
        tracker_->disk_started(index);

        // The changed ranges, widened to the link's clusters, read ahead with several requests in flight.
        const ChangedExtents plan = d.changed.aligned(link_cluster, image->virtual_size());
        pipeline::PrefetchingDevice source(*image, plan, std::max(1u, o_.requests_in_flight));
        std::uint64_t reported = 0;
        auto progress = [this, index, &reported](const ProgressInfo &p) {
            if (p.bytes_done > reported) {
                tracker_->disk_bytes(index, p.bytes_done - reported);
                reported = p.bytes_done;
            }
            return o_.cancel.is_cancelled() ? ProgressAction::cancel : ProgressAction::proceed;
        };
        if (full) {
            ConvertOptions co;
            co.output_format = "qcow2";
            co.threads = o_.threads;
            co.overwrite = true;
            co.cancel = o_.cancel;
            co.progress = progress;
            HSDK_TRY(auto stats, detail::convert_device(source, staged, co, &d.changed));
            out.bytes_read = stats.bytes_read;
            out.bytes_written = stats.bytes_written;
        } else {
            DeltaOptions dopt;
            dopt.backing_file = prev->file;
            dopt.backing_format = "qcow2";
            dopt.threads = o_.threads;
            dopt.overwrite = true;
            // An encrypted previous link cannot be read without its identity (age and gpg keys
            // encrypt to recipients): it is only named, and every changed extent is written.
            dopt.read_backing = !o_.encryption;
            dopt.cancel = o_.cancel;
            dopt.progress = progress;
            HSDK_TRY(auto stats, write_delta(source, d.changed, staged, dopt));
            out.backing_file = prev->file;
            out.bytes_read = stats.bytes_read;
            out.bytes_written = stats.bytes_written;
        }
        log(LogLevel::debug, fmt::format("backup: disk {}: at most {} reads were in flight", index, source.peak_in_flight()));
        if (out.whole_disk_transferred) {
            out.bytes_read = stream_bytes_;  // what crossed the network: the whole stream
        }
        if (o_.encryption) {
            // The link encrypted under its staged name; it keeps its name when published.
            tracker_->phase("encrypting");
            const std::string sealed = staged + ".sealed";
            staged_extra_.push_back(sealed);
            HSDK_TRY(auto done, io::seal_file(staged, sealed, {}, &*o_.encryption, true));
            if (std::rename(sealed.c_str(), staged.c_str()) != 0) return fail(io::errno_error(errno, "cannot rename", staged));
            out.encryption = done.encryption;
        }
        HSDK_TRY(out.sha256, file_digest_hex(staged, DigestAlgorithm::sha256, o_.cancel));
        struct stat st {};
        if (::stat(staged.c_str(), &st) == 0) out.file_bytes = static_cast<std::uint64_t>(st.st_size);
        return out;
    }

    // The whole disk as its export stream: only the changed parts are kept, in a sparse raw file
    // beside the links, which then serves as the source of the link.
    Result<std::unique_ptr<Image>> receive_changed_parts(unsigned index, BackupDisk &d, BackupDiskResult &out) {
        const std::string kept = fmt::format("{}/.{}.hsdk-stream", folder_, out.file);
        ::unlink(kept.c_str());
        staged_extra_.push_back(kept);
        const ChangedExtents keep = d.changed.aligned(link_cluster, d.capacity ? d.capacity : UINT64_MAX);
        exporter::StreamedConversionOptions so;
        so.destination = kept;
        so.format = "raw";
        so.threads = o_.threads;
        so.keep = &keep;
        exporter::StreamedConversion conversion(std::move(so));
        exporter::DownloadRequest rq;
        rq.stream = d.source.stream.get();
        rq.label = d.source.label;
        rq.final_path = kept;
        rq.identity = d.source.identity;
        rq.retry = {std::max(1u, d.source.max_attempts), d.source.initial_backoff, d.source.max_backoff};
        rq.cancel = o_.cancel;
        rq.consume = [&conversion](std::span<const std::byte> data) { return conversion.feed(data); };
        rq.restart_consumer = [&conversion] { return conversion.restart(); };
        rq.on_bytes = [this, index](std::uint64_t n, bool restarted) {
            if (restarted) tracker_->disk_restarted(index);
            else tracker_->disk_bytes(index, n);
        };
        if (d.source.expected_bytes > 0) tracker_->disk_total(index, d.source.expected_bytes);
        tracker_->disk_started(index);
        HSDK_TRY(auto received, exporter::download_resumable(rq));
        HSDK_TRYV(prepared_->verify(index - 1, ReceivedDisk{"", received.size, received.sha1, received.sha256}));
        HSDK_TRYV(conversion.finish());
        HSDK_TRYV(conversion.commit());
        out.whole_disk_transferred = true;
        stream_bytes_ = received.received;
        OpenOptions raw;
        raw.format = "raw";
        return open_image(kept, raw);
    }

    BackupOptions &o_;
    std::vector<std::string> staged_extra_;  // kept parts of streamed disks, removed in any case
    std::uint64_t stream_bytes_ = 0;
    BackupResult result_;
    std::unique_ptr<exporter::ExportProgressTracker> tracker_;
    std::unique_ptr<ProviderSession> session_;
    std::unique_ptr<PreparedBackup> prepared_;
    backup::State state_;
    std::string folder_;
    std::vector<std::string> staged_;
    std::unique_ptr<core::Executor::Periodic> keepalive_;
};

}  // namespace

Result<BackupResult> run_backup(BackupOptions options) {
    options.connection.cancel = options.cancel;
    BackupRunner runner(options);
    return runner.run();
}

}  // namespace hypersdk
