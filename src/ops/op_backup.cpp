// Backups and chains: backup.run, backup.list, backup.restore, backup.prune, chain.info,
// chain.verify, chain.flatten and delta.create.
#include "export/backup_state.hpp"
#include "io/artifact_crypto.hpp"
#include "ops/context.hpp"

#include <hypersdk/backup.hpp>
#include <hypersdk/cbt.hpp>

#include <fmt/format.h>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

json links_json(const std::vector<ChainLink> &links) {
    json out = json::array();
    for (const auto &l : links)
        out.push_back(json{{"file", l.file},
                           {"format", l.format},
                           {"virtual_size", l.virtual_size},
                           {"file_bytes", l.file_bytes},
                           {"backing_file", l.backing_file},
                           {"backing_format", l.backing_format}});
    return out;
}

Result<json> backup_run(Context &c) {
    const auto &r = c.request();
    BackupOptions o;
    HSDK_TRY(auto target, provider_target(c));
    o.provider = target.provider;
    o.provider_config = std::move(target.config);
    o.connection = std::move(target.connection);
    o.vm = str(r, "vm");
    o.repo = str(r, "repo");
    o.full = flag(r, "full");
    o.quiesce = flag(r, "quiesce");
    o.threads = static_cast<unsigned>(u64(r, "threads"));
    o.requests_in_flight = static_cast<unsigned>(u64(r, "requests_in_flight", 8));
    o.encryption = encryption_options(r);
    o.progress = export_progress(c);
    o.cancel = c.cancel();
    HSDK_TRY(auto res, run_backup(std::move(o)));
    json disks = json::array();
    for (const auto &d : res.disks) disks.push_back(backup::to_json(d));
    return json{{"folder", res.folder},   {"point", res.point}, {"kind", res.kind},           {"snapshot", res.snapshot},
                {"vm", to_json(res.vm)},  {"disks", disks},     {"bytes_read", res.bytes_read}, {"seconds", res.seconds}};
}

Result<json> backup_list(Context &c) { return list_backups(str(c.request(), "repo")); }

Result<json> backup_restore(Context &c) {
    const auto &r = c.request();
    RestoreOptions o;
    o.repo = str(r, "repo");
    o.vm = str(r, "vm");
    o.point = r.value("point", "latest");
    o.format = r.value("format", "qcow2");
    HSDK_TRY(o.format_options, format_options(r, "options"));
    o.output_dir = str(r, "output_dir");
    o.overwrite = flag(r, "overwrite");
    o.threads = static_cast<unsigned>(u64(r, "threads"));
    HSDK_TRY(auto open, open_options(c));
    o.keys = io::decryption_keys_of(open.http);
    o.progress = c.progress();
    o.cancel = c.cancel();
    HSDK_TRY(auto res, restore_backup(o));
    return json{{"point", res.point}, {"files", res.files}};
}

Result<json> backup_prune(Context &c) {
    const auto &r = c.request();
    PruneOptions o;
    o.repo = str(r, "repo");
    o.vm = str(r, "vm");
    if (r.contains("keep_last")) o.keep_last = static_cast<unsigned>(u64(r, "keep_last"));
    if (r.contains("keep_days")) o.keep_days = r["keep_days"].get<double>();
    HSDK_TRY(auto open, open_options(c));
    o.keys = io::decryption_keys_of(open.http);
    o.cancel = c.cancel();
    HSDK_TRY(auto res, prune_backups(o));
    return json{{"removed_points", res.removed_points},
                {"kept_points", res.kept_points},
                {"removed_files", res.removed_files},
                {"folded_files", res.folded_files}};
}

Result<json> chain_info_op(Context &c) {
    HSDK_TRY(auto open, open_options(c));
    HSDK_TRY(auto links, chain_info(str(c.request(), "path"), open));
    return json{{"links", links_json(links)}};
}

Result<json> chain_verify_op(Context &c) {
    HSDK_TRY(auto open, open_options(c));
    HSDK_TRY(auto report, verify_chain(str(c.request(), "path"), c.cancel(), io::decryption_keys_of(open.http)));
    return json{{"ok", report.ok()}, {"links", links_json(report.links)}, {"problems", report.problems}, {"hashes_checked", report.hashes_checked}};
}

Result<json> chain_flatten(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto open, open_options(c));
    ConvertOptions co;
    co.output_format = str(r, "output_format");
    HSDK_TRY(co.format_options, format_options(r, "options"));
    co.overwrite = flag(r, "overwrite");
    co.threads = static_cast<unsigned>(u64(r, "threads"));
    co.progress = c.progress();
    co.cancel = c.cancel();
    HSDK_TRY(auto stats, convert(str(r, "path"), open, str(r, "output"), co));
    return json{{"output", str(r, "output")}, {"virtual_size", stats.virtual_size}, {"bytes_read", stats.bytes_read}, {"output_size", stats.output_size}};
}

Result<json> delta_create(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto open, open_options(c));
    HSDK_TRY(auto base_source, open_byte_source(str(r, "base"), open.http));
    HSDK_TRY(auto next_source, open_byte_source(str(r, "new"), open.http));
    HSDK_TRY(auto base, open_image_source(base_source, open));
    HSDK_TRY(auto next, open_image_source(next_source, open));
    DiffOptions d;
    d.block_size = u64(r, "block_size", 64 * 1024);
    d.threads = static_cast<unsigned>(u64(r, "threads"));
    d.progress = c.progress();
    d.cancel = c.cancel();
    // The platform's own answer where it has one (EBS ListChangedBlocks between two snapshots
    // of one volume): nothing is read to find the changes. Otherwise both are compared.
    ChangedExtents changed;
    std::string method = "compare";
    HSDK_TRY(auto known, next_source->changes_since(*base_source));
    if (known && base->virtual_size() == next->virtual_size()) {
        for (const auto &run : *known) changed.add(run.offset, run.length);
        method = "platform";
    } else {
        HSDK_TRY(changed, diff_images(*base, *next, d));
    }
    DeltaOptions o;
    o.backing_file = str(r, "backing");
    o.backing_format = str(r, "backing_format");
    if (o.backing_format.empty()) {
        // As the overlay will find it: relative to the output's folder.
        const std::string out = str(r, "output");
        const auto slash = out.rfind('/');
        const std::string resolved = o.backing_file.front() == '/' || slash == std::string::npos ? o.backing_file
                                                                                                 : out.substr(0, slash + 1) + o.backing_file;
        HSDK_TRY(o.backing_format, probe_format(resolved));
    }
    HSDK_TRY(o.format_options, format_options(r, "options"));
    o.threads = d.threads;
    o.overwrite = flag(r, "overwrite");
    o.progress = c.progress();
    o.cancel = c.cancel();
    HSDK_TRY(auto stats, write_delta(*next, changed, str(r, "output"), o));
    return json{{"output", str(r, "output")},
                {"backing", o.backing_file},
                {"backing_format", o.backing_format},
                {"changed_runs", changed.runs().size()},
                {"changes_from", method},
                {"changed_bytes", stats.changed_bytes},
                {"bytes_written", stats.bytes_written},
                {"output_size", stats.output_size}};
}

const HandlerEntry backup_table[] = {
    {"backup.run", backup_run},       {"backup.list", backup_list},   {"backup.restore", backup_restore},
    {"backup.prune", backup_prune},   {"chain.info", chain_info_op},  {"chain.verify", chain_verify_op},
    {"chain.flatten", chain_flatten}, {"delta.create", delta_create},
};

}  // namespace

std::span<const HandlerEntry> backup_handlers() { return backup_table; }

}  // namespace hypersdk::ops
