// What a backup repository offers besides new points: listing, restoring a point into any format,
// and pruning old points by folding them into the oldest kept one.
#include "export/backup_state.hpp"
#include "io/artifact_crypto.hpp"
#include "export/package.hpp"
#include "io/file.hpp"

#include <hypersdk/backup.hpp>
#include <hypersdk/hash.hpp>
#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace hypersdk {
namespace {

using json = nlohmann::json;

const std::vector<std::string> &restore_formats() {
    static const std::vector<std::string> f = {"qcow2", "raw", "vmdk", "vhd", "vhdx", "vdi"};
    return f;
}

Result<backup::State> load_existing(const std::string &folder) {
    HSDK_TRY(auto st, backup::load_state(folder));
    if (!st) return fail(Errc::not_found, fmt::format("not found: '{}' has no backup state ({})", folder, backup::state_file_name));
    return std::move(*st);
}

std::string verify_summary(const ChainReport &r) {
    std::string out;
    for (const auto &p : r.problems) out += (out.empty() ? "" : "; ") + p;
    return out;
}

}  // namespace

Result<json> list_backups(const std::string &repo) {
    std::error_code ec;
    if (!std::filesystem::is_directory(repo, ec)) return fail(Errc::not_found, fmt::format("not found: no repository at '{}'", repo));
    std::vector<std::filesystem::path> folders;
    for (const auto &entry : std::filesystem::directory_iterator(repo, ec))
        if (entry.is_directory(ec)) folders.push_back(entry.path());
    std::sort(folders.begin(), folders.end());
    json vms = json::array();
    for (const auto &f : folders) {
        HSDK_TRY(auto st, backup::load_state(f.string()));
        if (!st) continue;
        json points = json::array();
        for (const auto &p : st->points) {
            json j = backup::to_json(p);
            std::uint64_t bytes = 0;
            for (const auto &d : p.disks) bytes += d.file_bytes;
            j["file_bytes"] = bytes;
            points.push_back(std::move(j));
        }
        vms.push_back(json{{"folder", f.filename().string()},
                           {"vm", backup::to_json(*st)["vm"]},
                           {"points", std::move(points)}});
    }
    return json{{"repo", repo}, {"vms", std::move(vms)}};
}

Result<RestoreResult> restore_backup(const RestoreOptions &o) {
    if (std::find(restore_formats().begin(), restore_formats().end(), o.format) == restore_formats().end())
        return fail(Errc::invalid_argument, fmt::format("unknown restore format '{}' (qcow2, raw, vmdk, vhd, vhdx, vdi)", o.format));
    if (o.output_dir.empty()) return fail(Errc::invalid_argument, "no output folder given");
    HSDK_TRY(auto folder, backup::find_vm_folder(o.repo, o.vm));
    HSDK_TRY(auto state, load_existing(folder));
    HSDK_TRY(const backup::Point *point, backup::find_point(state, o.point));
    const std::string stem = exporter::file_stem(state.vm.name.empty() ? std::filesystem::path(folder).filename().string() : state.vm.name);

    // Every link of every disk checked before any byte is written.
    for (const auto &d : point->disks) {
        HSDK_TRY(auto report, verify_chain(folder + "/" + d.file, o.cancel, o.keys));
        if (!report.ok())
            return fail(Errc::corrupt_image, fmt::format("point {} of disk {} cannot be restored: {}", point->id, d.disk_id, verify_summary(report)));
    }
    std::error_code ec;
    std::filesystem::create_directories(o.output_dir, ec);
    if (ec) return fail(io::errno_error(ec.value(), "cannot create the output folder", o.output_dir));
    RestoreResult result;
    result.point = point->id;
    std::vector<std::string> outputs;
    for (std::size_t i = 0; i < point->disks.size(); ++i)
        outputs.push_back(fmt::format("{}/{}-disk{}.{}", o.output_dir, stem, i + 1, o.format));
    if (!o.overwrite)
        for (const auto &out : outputs) {
            struct stat st {};
            if (::lstat(out.c_str(), &st) == 0) return fail(Errc::conflict, fmt::format("output '{}' already exists (overwrite not allowed)", out));
        }
    for (std::size_t i = 0; i < point->disks.size(); ++i) {
        ConvertOptions co;
        co.output_format = o.format;
        co.format_options = o.format_options;
        co.threads = o.threads;
        co.overwrite = o.overwrite;
        co.progress = o.progress;
        co.cancel = o.cancel;
        OpenOptions src;
        src.format = "qcow2";
        io::apply_decryption_keys(src.http, o.keys);
        auto converted = convert(folder + "/" + point->disks[i].file, src, outputs[i], co);
        if (!converted) {
            // A restore is all disks or nothing.
            for (const auto &done : result.files) ::unlink(done.c_str());
            return fail(converted.error().with_context(fmt::format("restoring disk {} of point {}", point->disks[i].disk_id, point->id)));
        }
        result.files.push_back(outputs[i]);
    }
    return result;
}

// Encrypts a folded link in place (under its temporary name) as its record says it was.
static Result<void> backup_reseal_link(const std::string &tmp, const EncryptionRecord &record, const DecryptionKeys &keys) {
    EncryptionOptions e;
    e.method = record.method;
    e.gpg_home = keys.gpg_home;
    if (record.method == "gpg") e.gpg_recipients = record.recipients;
    else if (record.method == "age" && record.key == "recipients") e.recipients = record.recipients;
    else {
        e.passphrase_file = keys.passphrase_file;
        e.passphrase_env = keys.passphrase_env;
        e.key_file = keys.key_file;
    }
    const std::string sealed = tmp + ".sealed";
    auto r = io::encrypt_file_with(e, tmp, sealed, true);
    if (!r) return fail(r.error());
    if (std::rename(sealed.c_str(), tmp.c_str()) != 0) {
        const int err = errno;
        ::unlink(sealed.c_str());
        return fail(io::errno_error(err, "cannot rename", tmp));
    }
    return success();
}

Result<PruneResult> prune_backups(const PruneOptions &o) {
    if (!o.keep_last && !o.keep_days) return fail(Errc::invalid_argument, "say what to keep: keep_last or keep_days");
    if (o.keep_last && *o.keep_last == 0) return fail(Errc::invalid_argument, "keep_last must keep at least 1 point");
    if (o.keep_days && *o.keep_days < 0) return fail(Errc::invalid_argument, "keep_days must not be negative");
    HSDK_TRY(auto folder, backup::find_vm_folder(o.repo, o.vm));
    HSDK_TRY(auto state, load_existing(folder));
    PruneResult result;
    const std::size_t n = state.points.size();
    // Points are kept from the newest back; what a rule keeps stays. The newest is always kept.
    std::size_t keep_from = n == 0 ? 0 : n - 1;
    if (o.keep_last) keep_from = std::min(keep_from, n > *o.keep_last ? n - *o.keep_last : 0);
    if (o.keep_days) {
        const double cutoff = static_cast<double>(std::time(nullptr)) - *o.keep_days * 86400.0;
        for (std::size_t i = 0; i < n; ++i) {
            const auto t = backup::parse_iso8601(state.points[i].created);
            if (t && *t >= cutoff) {
                keep_from = std::min(keep_from, i);
                break;
            }
        }
    }
    for (std::size_t i = 0; i < n; ++i) (i < keep_from ? result.removed_points : result.kept_points).push_back(state.points[i].id);
    if (keep_from == 0) return result;

    // The oldest kept point's links become standalone (same names: newer links stay valid).
    backup::Point &oldest = state.points[keep_from];
    for (auto &d : oldest.disks) {
        HSDK_TRYV(o.cancel.check());
        if (d.backing_file.empty()) continue;
        const std::string path = folder + "/" + d.file;
        HSDK_TRY(auto report, verify_chain(path, o.cancel, o.keys));
        if (!report.ok()) return fail(Errc::corrupt_image, fmt::format("cannot fold '{}': {}", path, verify_summary(report)));
        const std::string tmp = fmt::format("{}/.{}.hsdk-fold", folder, d.file);
        ConvertOptions co;
        co.output_format = "qcow2";
        co.overwrite = true;
        co.cancel = o.cancel;
        OpenOptions src;
        src.format = "qcow2";
        io::apply_decryption_keys(src.http, o.keys);
        auto folded = convert(path, src, tmp, co);
        if (!folded) {
            ::unlink(tmp.c_str());
            return fail(folded.error().with_context(fmt::format("folding '{}'", path)));
        }
        if (d.encryption) {
            // Encrypted as it was: the same method, to the recipients recorded or with the key given.
            auto sealed = backup_reseal_link(tmp, *d.encryption, o.keys);
            if (!sealed) {
                ::unlink(tmp.c_str());
                return fail(sealed.error().with_context(fmt::format("encrypting the folded '{}'", path)));
            }
        }
        auto digest = file_digest_hex(tmp, DigestAlgorithm::sha256, o.cancel);
        if (!digest) {
            ::unlink(tmp.c_str());
            return fail(digest.error());
        }
        if (std::rename(tmp.c_str(), path.c_str()) != 0) {
            const int err = errno;
            ::unlink(tmp.c_str());
            return fail(io::errno_error(err, "cannot put the folded link in place", path));
        }
        d.backing_file.clear();
        d.sha256 = digest.value();
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) d.file_bytes = static_cast<std::uint64_t>(st.st_size);
        result.folded_files.push_back(path);
    }
    std::set<std::string> needed;
    for (std::size_t i = keep_from; i < n; ++i)
        for (const auto &d : state.points[i].disks) needed.insert(d.file);
    std::vector<std::string> doomed;
    for (std::size_t i = 0; i < keep_from; ++i)
        for (const auto &d : state.points[i].disks)
            if (!needed.count(d.file)) doomed.push_back(d.file);
    state.points.erase(state.points.begin(), state.points.begin() + static_cast<std::ptrdiff_t>(keep_from));
    HSDK_TRYV(backup::save_state(folder, state));
    for (const auto &f : doomed) {
        const std::string path = folder + "/" + f;
        if (::unlink(path.c_str()) == 0) result.removed_files.push_back(path);
        else if (errno != ENOENT) log(LogLevel::warn, fmt::format("prune: could not remove '{}': {}", path, std::strerror(errno)));
    }
    return result;
}

}  // namespace hypersdk
