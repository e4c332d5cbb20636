// Changed-block tracking, backups and chains: `hsdk cbt status|enable`, `hsdk backup` (and
// `backup list|prune`), `hsdk restore`, `hsdk chain info|verify|flatten`, `hsdk delta create`.
// Each runs its operation; nothing here knows more than the flags.
#include "artifact_flags.hpp"
#include "commands.hpp"
#include "progress_display.hpp"
#include "provider_flags.hpp"

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

using json = nlohmann::json;

void print_json(const json &j) { fmt::print("{}\n", j.dump(2)); }

int joined_options(const std::vector<std::string> &texts, json &request) {
    std::string options, error;
    if (!join_format_options(texts, options, error)) return report_message(error, exit_usage);
    if (!options.empty()) request["options"] = options;
    return exit_ok;
}

void register_cbt(CLI::App &root, std::vector<Command> &commands) {
    auto *cbt = root.add_subcommand("cbt", "Changed-block tracking of a VM (vSphere CBT): status, enable");
    cbt->require_subcommand(1);
    struct Args {
        ProviderFlags provider;
        std::string vm;
        bool disable = false, json = false;
    };
    auto add = [&](const char *name, const char *help, bool enable) {
        auto *app = cbt->add_subcommand(name, help);
        auto a = std::make_shared<Args>();
        add_provider_flags(app, a->provider);
        app->add_option("--vm", a->vm, "The VM: inventory path, name or id")->required();
        if (enable) app->add_flag("--disable", a->disable, "Turn tracking off instead");
        add_output_flags(app, a->json, "the tracking status");
        commands.push_back({app, [a, enable]() {
                                json request, result;
                                std::string error;
                                if (!a->provider.request(request, error)) return report_message(error, exit_usage);
                                request["vm"] = a->vm;
                                if (enable) request["enabled"] = !a->disable;
                                RunOptions how;
                                how.json_errors = a->json;
                                if (int st = run_op(enable ? "cbt.enable" : "cbt.status", request, result, how); st != exit_ok) return st;
                                if (a->json) {
                                    print_json(result);
                                    return exit_ok;
                                }
                                fmt::print("{}: changed-block tracking {}\n", a->vm, result["enabled"].get<bool>() ? "on" : "off");
                                for (const auto &d : result["disks"])
                                    fmt::print("  disk {} ({}): change id {}\n", d["disk_id"].get<std::string>(), d["label"].get<std::string>(),
                                               d["change_id"].get<std::string>().empty() ? "-" : d["change_id"].get<std::string>());
                                return exit_ok;
                            }});
    };
    add("status", "Whether tracking is on, and each disk's current change id", false);
    add("enable", "Turn tracking on (ReconfigVM, then a snapshot created and removed to activate it)", true);
}

void register_backup(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("backup", "Back up a VM into a repository: full, then incrementals from changed-block tracking, as qcow2 chains");
    app->require_subcommand(0, 1);

    // Children first: the first parsed command runs, and a parent counts as parsed too.
    auto *list = app->add_subcommand("list", "The points of every VM in a repository");
    struct ListArgs {
        std::string repo;
        bool json = false;
    };
    auto l = std::make_shared<ListArgs>();
    list->add_option("--repo", l->repo, "The repository folder")->required();
    add_output_flags(list, l->json, "the repository's VMs and points");
    commands.push_back({list, [l]() {
                            json result;
                            RunOptions how;
                            how.json_errors = l->json;
                            if (int st = run_op("backup.list", {{"repo", l->repo}}, result, how); st != exit_ok) return st;
                            if (l->json) {
                                print_json(result);
                                return exit_ok;
                            }
                            for (const auto &vm : result["vms"]) {
                                fmt::print("{} ({})\n", vm["folder"].get<std::string>(), vm["vm"].value("inventory_path", ""));
                                for (const auto &p : vm["points"])
                                    fmt::print("  point {:<4} {}  {:<11} {} disk(s), {}\n", p["id"].get<std::string>(), p["created"].get<std::string>(),
                                               p["kind"].get<std::string>(), p["disks"].size(), human_size(p["file_bytes"].get<std::uint64_t>()));
                            }
                            return exit_ok;
                        }});

    auto *prune = app->add_subcommand("prune", "Remove the oldest points of a VM (the oldest kept point is folded into a standalone base)");
    struct PruneArgs {
        std::string repo, vm;
        std::optional<unsigned> keep_last;
        std::optional<double> keep_days;
        bool json = false;
        KeyFlags keys;
    };
    auto pr = std::make_shared<PruneArgs>();
    add_key_flags(prune, pr->keys, "encrypted links (folded links are encrypted again as they were)");
    prune->add_option("--repo", pr->repo, "The repository folder")->required();
    prune->add_option("--vm", pr->vm, "The VM: its folder in the repository, or its name, id or UUID")->required();
    auto *keep_last = prune->add_option("--keep-last", pr->keep_last, "Keep this many newest points")->check(CLI::Range(1u, 1000000u));
    auto *keep_days = prune->add_option("--keep-days", pr->keep_days, "Keep the points younger than this many days")->check(CLI::Range(0.0, 1e6));
    add_output_flags(prune, pr->json, "what was removed and kept");
    commands.push_back({prune, [pr, keep_last, keep_days]() {
                            if (keep_last->count() == 0 && keep_days->count() == 0)
                                return report_message("say what to keep: --keep-last N or --keep-days D", exit_usage);
                            json request{{"repo", pr->repo}, {"vm", pr->vm}}, result;
                            if (pr->keep_last) request["keep_last"] = *pr->keep_last;
                            if (pr->keep_days) request["keep_days"] = *pr->keep_days;
                            if (auto k = pr->keys.decrypt_request(); !k.empty()) request["decrypt"] = k;
                            RunOptions how;
                            how.json_errors = pr->json;
                            if (int st = run_op("backup.prune", request, result, how); st != exit_ok) return st;
                            if (pr->json) {
                                print_json(result);
                                return exit_ok;
                            }
                            fmt::print("removed {} point(s), kept {}; {} file(s) removed, {} folded\n", result["removed_points"].size(),
                                       result["kept_points"].size(), result["removed_files"].size(), result["folded_files"].size());
                            return exit_ok;
                        }});

    struct Args {
        ProviderFlags provider;
        std::string vm, repo;
        bool full = false, quiesce = false, progress = false, json = false;
        unsigned threads = 0, requests = 8;
        EncryptFlags encrypt;
        KeyFlags keys;
    };
    auto a = std::make_shared<Args>();
    add_provider_flags(app, a->provider);
    add_encrypt_flags(app, a->encrypt);
    add_key_flags(app, a->keys, "the encrypted links", false);
    app->add_option("--gpg-home", a->keys.gpg_home, "GnuPG home (GNUPGHOME) holding the --gpg-recipient keys");
    app->add_option("--vm", a->vm, "The VM: inventory path, name or id");
    app->add_option("--repo", a->repo, "The repository folder (one folder per VM inside)");
    app->add_flag("--full", a->full, "Copy every disk in full, starting new chains");
    app->add_flag("--quiesce", a->quiesce, "Quiesce the guest for the snapshot");
    app->add_flag("-p,--progress", a->progress, "Show progress");
    app->add_option("--threads", a->threads, "Conversion workers (default: one per core)")->check(CLI::Range(0u, 256u));
    app->add_option("--requests", a->requests, "Changed-range reads in flight per disk (default 8)")->check(CLI::Range(1u, 64u));
    add_output_flags(app, a->json, "the new point");
    commands.push_back({app, [a]() {
                            if (a->vm.empty() || a->repo.empty()) return report_message("backup needs --vm and --repo (see hsdk backup --help)", exit_usage);
                            json request, result;
                            std::string error;
                            if (!a->provider.request(request, error)) return report_message(error, exit_usage);
                            // vSphere's connection travels as "config" like any provider's (the operation merges it).
                            request["vm"] = a->vm;
                            request["repo"] = a->repo;
                            request["full"] = a->full;
                            request["quiesce"] = a->quiesce;
                            request["threads"] = a->threads;
                            request["requests_in_flight"] = a->requests;
                            if (!add_encrypt_request(a->encrypt, a->keys, request, error)) return report_message(error, exit_usage);
                            RunOptions how = progress_if(a->progress);
                            how.json_errors = a->json;
                            if (int st = run_op("backup.run", request, result, how); st != exit_ok) return st;
                            if (a->json) {
                                print_json(result);
                                return exit_ok;
                            }
                            fmt::print("point {} ({}) of {} in {}\n", result["point"].get<std::string>(), result["kind"].get<std::string>(),
                                       a->vm, result["folder"].get<std::string>());
                            for (const auto &d : result["disks"]) {
                                fmt::print("  disk {}: {} {}, {} changed, {} read -> {}\n", d["disk_id"].get<std::string>(),
                                           d["full"].get<bool>() ? "full" : "incremental", human_size(d["capacity"].get<std::uint64_t>()),
                                           human_size(d["changed_bytes"].get<std::uint64_t>()), human_size(d["bytes_read"].get<std::uint64_t>()),
                                           d["file"].get<std::string>());
                                if (!d["notice"].get<std::string>().empty()) fmt::print("    notice: {}\n", d["notice"].get<std::string>());
                            }
                            return exit_ok;
                        }});
}

void register_restore(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("restore", "Restore a backup point of a VM into any disk format");
    struct Args {
        std::string repo, vm, point = "latest", format, out;
        std::vector<std::string> options;
        bool overwrite = false, progress = false, json = false;
        unsigned threads = 0;
        KeyFlags keys;
    };
    auto a = std::make_shared<Args>();
    add_key_flags(app, a->keys, "encrypted links");
    app->add_option("--repo", a->repo, "The repository folder")->required();
    app->add_option("--vm", a->vm, "The VM: its folder in the repository, or its name, id or UUID")->required();
    app->add_option("--point", a->point, "A point id (hsdk backup list) or latest (default)");
    app->add_option("-O,--output-format", a->format, "Output format: qcow2, raw, vmdk, vhd, vhdx, vdi")->required();
    app->add_option("--out", a->out, "Output folder (created if missing)")->required();
    app->add_option("-o,--options", a->options, "Output options key=value[,key=value...] (repeatable)");
    app->add_flag("--overwrite", a->overwrite, "Replace existing outputs");
    app->add_flag("-p,--progress", a->progress, "Show progress");
    app->add_option("--threads", a->threads, "Worker threads (default: one per core)")->check(CLI::Range(0u, 256u));
    add_output_flags(app, a->json, "the files written");
    commands.push_back({app, [a]() {
                            json request{{"repo", a->repo}, {"vm", a->vm},       {"point", a->point},       {"format", a->format},
                                         {"output_dir", a->out}, {"overwrite", a->overwrite}, {"threads", a->threads}},
                                result;
                            if (int st = joined_options(a->options, request); st != exit_ok) return st;
                            if (auto k = a->keys.decrypt_request(); !k.empty()) request["decrypt"] = k;
                            RunOptions how = progress_if(a->progress);
                            how.json_errors = a->json;
                            if (int st = run_op("backup.restore", request, result, how); st != exit_ok) return st;
                            if (a->json) {
                                print_json(result);
                                return exit_ok;
                            }
                            for (const auto &f : result["files"]) fmt::print("{}\n", f.get<std::string>());
                            return exit_ok;
                        }});
}

void register_chain(CLI::App &root, std::vector<Command> &commands) {
    auto *chain = root.add_subcommand("chain", "A chain of images (a backup's links): info, verify, flatten");
    chain->require_subcommand(1);

    struct InfoArgs {
        std::string link;
        bool json = false;
        KeyFlags keys;
    };
    auto add_view = [&](const char *name, const char *help, bool verify) {
        auto *app = chain->add_subcommand(name, help);
        auto a = std::make_shared<InfoArgs>();
        app->add_option("link", a->link, "The top link")->required();
        add_key_flags(app, a->keys, "encrypted links");
        add_output_flags(app, a->json, verify ? "the report" : "the links");
        commands.push_back({app, [a, verify]() {
                                json result;
                                RunOptions how;
                                how.json_errors = a->json;
                                json request{{"path", a->link}};
                                if (auto k = a->keys.decrypt_request(); !k.empty()) request["decrypt"] = k;
                                if (int st = run_op(verify ? "chain.verify" : "chain.info", request, result, how); st != exit_ok) return st;
                                if (a->json) print_json(result);
                                else {
                                    for (const auto &l : result["links"])
                                        fmt::print("{}  {} {} bytes, file {}{}\n", l["file"].get<std::string>(), l["format"].get<std::string>(),
                                                   l["virtual_size"].get<std::uint64_t>(), human_size(l["file_bytes"].get<std::uint64_t>()),
                                                   l["backing_file"].get<std::string>().empty()
                                                       ? std::string()
                                                       : fmt::format(", backing {} ({})", l["backing_file"].get<std::string>(),
                                                                     l["backing_format"].get<std::string>()));
                                    if (verify) {
                                        for (const auto &p : result["problems"]) fmt::print(stderr, "hsdk: chain verify: {}\n", p.get<std::string>());
                                        if (result["ok"].get<bool>())
                                            fmt::print("chain ok: {} link(s), {} SHA-256 checked\n", result["links"].size(),
                                                       result["hashes_checked"].get<std::uint64_t>());
                                    }
                                }
                                return verify && !result["ok"].get<bool>() ? exit_error : exit_ok;
                            }});
    };
    add_view("info", "Each link from the top down to the base: format, size, backing file", false);
    add_view("verify", "Check every link: opens, metadata, backing names and formats, sizes, recorded SHA-256", true);

    auto *flatten = chain->add_subcommand("flatten", "Write a link with its whole chain as one standalone image of any format");
    struct FlattenArgs {
        std::string link, format, out;
        std::vector<std::string> options;
        bool progress = false;
        KeyFlags keys;
    };
    auto f = std::make_shared<FlattenArgs>();
    add_key_flags(flatten, f->keys, "encrypted links");
    flatten->add_option("link", f->link, "The link (the point)")->required();
    flatten->add_option("-O,--output-format", f->format, "Output format: raw, qcow2, vmdk, vhd, vhdx, vdi")->required();
    flatten->add_option("-o,--options", f->options, "Output options key=value[,key=value...] (repeatable)");
    flatten->add_flag("-p,--progress", f->progress, "Show progress");
    flatten->add_option("output", f->out, "The output file (written atomically)")->required();
    commands.push_back({flatten, [f]() {
                            json request{{"path", f->link}, {"output", f->out}, {"output_format", f->format}}, result;
                            if (int st = joined_options(f->options, request); st != exit_ok) return st;
                            if (auto k = f->keys.decrypt_request(); !k.empty()) request["decrypt"] = k;
                            return run_op("chain.flatten", request, result, progress_if(f->progress));
                        }});
}

void register_delta(CLI::App &root, std::vector<Command> &commands) {
    auto *delta = root.add_subcommand("delta", "Deltas between images (for sources without changed-block tracking)");
    delta->require_subcommand(1);
    auto *app = delta->add_subcommand("create", "A qcow2 overlay of NEW's blocks that differ from BASE, backed by PREV");
    struct Args {
        std::string format, base, next, backing, backing_format, out;
        std::vector<std::string> options;
        bool json = false, overwrite = false;
        AwsFlags aws;
    };
    auto a = std::make_shared<Args>();
    app->add_option("-f,--format", a->format, "Format of BASE and NEW (probed when absent; raw is never guessed)");
    add_aws_flags(app, a->aws, "ebs:// images");
    app->add_option("--base", a->base, "The image the previous link's content equals")->required();
    app->add_option("--new", a->next, "The image at the new point")->required();
    app->add_option("--backing", a->backing, "The previous link, as the overlay names it (relative to OUT's folder)")->required();
    app->add_option("-F,--backing-format", a->backing_format, "Format of the previous link (probed when absent)");
    app->add_option("-o,--options", a->options, "qcow2 options key=value[,key=value...] (repeatable)");
    app->add_flag("--overwrite", a->overwrite, "Replace OUT if it exists");
    app->add_option("output", a->out, "The overlay to write")->required();
    add_output_flags(app, a->json, "what was written");
    commands.push_back({app, [a]() {
                            json request{{"base", a->base}, {"new", a->next}, {"backing", a->backing}, {"output", a->out}, {"overwrite", a->overwrite}},
                                result;
                            if (!a->format.empty()) request["format"] = a->format;
                            if (!a->backing_format.empty()) request["backing_format"] = a->backing_format;
                            if (!a->aws.empty()) request["aws"] = a->aws.request();
                            if (int st = joined_options(a->options, request); st != exit_ok) return st;
                            RunOptions how;
                            how.json_errors = a->json;
                            if (int st = run_op("delta.create", request, result, how); st != exit_ok) return st;
                            if (a->json) print_json(result);
                            else
                                fmt::print("{}: {} changed in {} run(s), {} written, backed by {} ({})\n", a->out,
                                           human_size(result["changed_bytes"].get<std::uint64_t>()), result["changed_runs"].get<std::uint64_t>(),
                                           human_size(result["output_size"].get<std::uint64_t>()), result["backing"].get<std::string>(),
                                           result["backing_format"].get<std::string>());
                            return exit_ok;
                        }});
}

}  // namespace

void register_backup_commands(CLI::App &root, std::vector<Command> &commands) {
    register_cbt(root, commands);
    register_backup(root, commands);
    register_restore(root, commands);
    register_chain(root, commands);
    register_delta(root, commands);
}

}  // namespace hsdk
