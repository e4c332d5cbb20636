// Image commands, mirroring qemu-img: info, convert, compare, map, check.
#include "commands.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include <fmt/format.h>

#include <csignal>
#include <memory>

namespace hsdk {
namespace {

std::string human_size(std::uint64_t bytes) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        ++u;
    }
    if (u == 0) return fmt::format("{} B", bytes);
    return fmt::format("{:.3g} {}", v, units[u]);
}

void print_specific(const nlohmann::json &j, int indent) {
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string pad(static_cast<std::size_t>(indent), ' ');
        if (it.value().is_object()) {
            fmt::print("{}{}:\n", pad, it.key());
            print_specific(it.value(), indent + 4);
        } else if (it.value().is_array()) {
            fmt::print("{}{}:\n", pad, it.key());
            for (const auto &item : it.value()) {
                if (item.is_object()) {
                    fmt::print("{}    [\n", pad);
                    print_specific(item, indent + 8);
                    fmt::print("{}    ]\n", pad);
                } else {
                    fmt::print("{}    {}\n", pad, item.is_string() ? item.get<std::string>() : item.dump());
                }
            }
        } else {
            fmt::print("{}{}: {}\n", pad, it.key(), it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
        }
    }
}

void print_info_human(const hypersdk::ImageInfo &info) {
    fmt::print("image: {}\n", info.filename);
    fmt::print("file format: {}\n", info.format);
    if (!info.subformat.empty()) fmt::print("subformat: {}\n", info.subformat);
    fmt::print("virtual size: {} ({} bytes)\n", human_size(info.virtual_size), info.virtual_size);
    fmt::print("disk size: {}\n", human_size(info.actual_size));
    if (info.cluster_size) fmt::print("cluster_size: {}\n", *info.cluster_size);
    if (!info.backing_filename.empty()) fmt::print("backing file: {}\n", info.backing_filename);
    if (!info.backing_format.empty()) fmt::print("backing file format: {}\n", info.backing_format);
    if (info.dirty) fmt::print("dirty: yes\n");
    if (!info.format_specific.empty()) {
        fmt::print("Format specific information:\n");
        print_specific(info.format_specific, 4);
    }
}

struct SourceFlags {
    std::string format;
    bool allow_external = false;
    hypersdk::OpenOptions options() const {
        hypersdk::OpenOptions o;
        o.format = format;
        o.allow_external_files = allow_external;
        return o;
    }
};

void add_source_flags(CLI::App *app, SourceFlags &f, const char *flag = "-f,--format") {
    app->add_option(flag, f.format, "Source format (raw, qcow2, vmdk, vhd/vpc, vhdx, vdi); probed when omitted");
    app->add_flag("--allow-external-files", f.allow_external,
                  "Follow backing files and extents outside the image's folder (off by default, see OSSA-2024-001)");
}

// Ctrl-C cancels a running conversion cleanly (temporary output removed).
hypersdk::CancelToken *g_interrupt_token = nullptr;
extern "C" void on_interrupt(int) {
    if (g_interrupt_token) g_interrupt_token->cancel();
}

void register_info(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("info", "Show an image's format, sizes, backing chain and format-specific details");
    struct Args {
        SourceFlags src;
        bool json = false;
        bool chain = false;
        std::string file;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->src);
    app->add_flag("--json", a->json, "Print JSON (qemu-img info --output=json style)");
    app->add_flag("--backing-chain", a->chain, "Show every image of the backing chain");
    app->add_option("file", a->file, "Image file")->required();
    commands.push_back({app, [a]() {
                            auto image = hypersdk::open_image(a->file, a->src.options());
                            if (!image) return report(image.error());
                            auto chain = image.value()->chain_info();
                            if (a->json) {
                                if (a->chain)
                                    fmt::print("{}\n", hypersdk::chain_to_json(chain).dump(4));
                                else
                                    fmt::print("{}\n", hypersdk::to_json(chain.front()).dump(4));
                                return exit_ok;
                            }
                            for (std::size_t i = 0; i < (a->chain ? chain.size() : 1); ++i) {
                                if (i) fmt::print("\n");
                                print_info_human(chain[i]);
                            }
                            return exit_ok;
                        }});
}

void register_convert(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("convert", "Convert a disk image to another format");
    struct Args {
        SourceFlags src;
        std::string out_format;
        std::vector<std::string> options;
        bool compress = false;
        bool progress = false;
        unsigned threads = 0;
        std::string cache = "none";
        std::string source, destination;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->src);
    app->add_option("-t,--cache", a->cache,
                    "Output cache mode: none (O_DIRECT for aligned data, fsync; the default), writeback (page cache, "
                    "fsync) or unsafe (page cache, no fsync: qemu-img convert's default)")
        ->check(CLI::IsMember({"none", "writeback", "unsafe"}));
    app->add_option("-O,--output-format", a->out_format, "Output format: raw, qcow2, vmdk, vhd (vpc), vhdx, vdi")->required();
    app->add_option("-o,--options", a->options, "Output options key=value[,key=value...] (repeatable)");
    app->add_flag("-c,--compress", a->compress, "Compress where the output format can (qcow2, vmdk streamOptimized)");
    app->add_flag("-p,--progress", a->progress, "Show a progress bar on a terminal");
    app->add_option("--threads", a->threads, "Worker threads (default: one per core)")->check(CLI::Range(0u, 256u));
    app->add_option("source", a->source, "Source image")->required();
    app->add_option("destination", a->destination, "Destination file")->required();
    commands.push_back({app, [a]() {
                            hypersdk::ConvertOptions co;
                            co.output_format = a->out_format;
                            for (const auto &text : a->options) {
                                auto parsed = hypersdk::parse_format_options(text);
                                if (!parsed) return report_message(parsed.error().message, exit_usage);
                                co.format_options.insert(co.format_options.end(), parsed.value().begin(), parsed.value().end());
                            }
                            co.compress = a->compress;
                            co.threads = a->threads;
                            if (auto set = hypersdk::set_cache_mode(co, a->cache); !set)
                                return report_message(set.error().message, exit_usage);
                            if (a->progress) co.progress = terminal_progress_bar();
                            g_interrupt_token = &co.cancel;
                            std::signal(SIGINT, on_interrupt);
                            std::signal(SIGTERM, on_interrupt);
                            auto stats = hypersdk::convert(a->source, a->src.options(), a->destination, co);
                            std::signal(SIGINT, SIG_DFL);
                            std::signal(SIGTERM, SIG_DFL);
                            g_interrupt_token = nullptr;
                            if (!stats) return report(stats.error());
                            return exit_ok;
                        }});
}

void register_compare(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand(
        "compare", "Compare two images' contents (exit 0 identical, 1 different, 2 usage, 3 error)");
    struct Args {
        SourceFlags a, b;
        bool strict = false;
        bool progress = false;
        std::string first, second;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->a);
    app->add_option("-F", a->b.format, "Format of the second image");
    app->add_flag("-s,--strict", a->strict, "Sizes and allocation must match too");
    app->add_flag("-p,--progress", a->progress, "Show a progress bar on a terminal");
    app->add_option("image1", a->first, "First image")->required();
    app->add_option("image2", a->second, "Second image")->required();
    commands.push_back({app, [a]() {
                            constexpr int compare_error = 3;
                            auto bo = a->a.options();
                            bo.format = a->b.format;
                            auto x = hypersdk::open_image(a->first, a->a.options());
                            if (!x) return report_message(x.error().message, compare_error);
                            auto y = hypersdk::open_image(a->second, bo);
                            if (!y) return report_message(y.error().message, compare_error);
                            hypersdk::CompareOptions opts;
                            opts.strict = a->strict;
                            if (a->progress) opts.progress = terminal_progress_bar();
                            auto r = hypersdk::compare(*x.value(), *y.value(), opts);
                            if (!r) return report_message(r.error().message, compare_error);
                            if (r.value().identical) {
                                fmt::print("Images are identical.\n");
                                return exit_ok;
                            }
                            fmt::print("Content mismatch at offset {}! ({})\n", r.value().first_difference, r.value().reason);
                            return 1;
                        }});
}

void register_map(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("map", "Show which ranges of an image hold data, zeros or nothing");
    struct Args {
        SourceFlags src;
        bool json = false;
        std::string file;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->src);
    app->add_flag("--json", a->json, "Print JSON (qemu-img map --output=json style)");
    app->add_option("file", a->file, "Image file")->required();
    commands.push_back({app, [a]() {
                            auto image = hypersdk::open_image(a->file, a->src.options());
                            if (!image) return report(image.error());
                            auto runs = image.value()->block_status(0, image.value()->virtual_size());
                            if (!runs) return report(runs.error());
                            const auto chain = image.value()->chain_info();
                            if (a->json) {
                                nlohmann::json out = nlohmann::json::array();
                                for (const auto &e : runs.value()) {
                                    nlohmann::json j{{"start", e.offset},
                                                     {"length", e.length},
                                                     {"depth", e.depth},
                                                     {"present", e.kind != hypersdk::ExtentKind::hole},
                                                     {"zero", e.kind != hypersdk::ExtentKind::data},
                                                     {"data", e.kind == hypersdk::ExtentKind::data}};
                                    if (e.host_offset != hypersdk::no_host_offset) j["offset"] = e.host_offset;
                                    out.push_back(std::move(j));
                                }
                                fmt::print("{}\n", out.dump());
                                return exit_ok;
                            }
                            fmt::print("{:<16}{:<16}{:<16}{}\n", "Offset", "Length", "Mapped to", "File");
                            for (const auto &e : runs.value()) {
                                if (e.kind != hypersdk::ExtentKind::data) continue;
                                const std::string file = e.depth < chain.size() ? chain[e.depth].filename : "";
                                const std::string mapped = e.host_offset == hypersdk::no_host_offset ? "-" : fmt::format("{:#x}", e.host_offset);
                                fmt::print("{:<16}{:<16}{:<16}{}\n", fmt::format("{:#x}", e.offset), fmt::format("{:#x}", e.length), mapped, file);
                            }
                            return exit_ok;
                        }});
}

void register_check(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("check", "Check an image's metadata for consistency (read-only)");
    struct Args {
        SourceFlags src;
        bool json = false;
        std::string file;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->src);
    app->add_flag("--json", a->json, "Print JSON");
    app->add_option("file", a->file, "Image file")->required();
    commands.push_back({app, [a]() {
                            auto r = hypersdk::check_image(a->file, a->src.options());
                            if (!r) return report(r.error());
                            const auto &c = r.value();
                            if (a->json) {
                                nlohmann::json j{{"filename", a->file}, {"format", c.format}, {"check-errors", c.errors},
                                                 {"leaks", c.leaks}, {"messages", c.messages}};
                                if (c.total_clusters) {
                                    j["allocated-clusters"] = c.allocated_clusters;
                                    j["total-clusters"] = c.total_clusters;
                                }
                                if (c.image_end_offset) j["image-end-offset"] = *c.image_end_offset;
                                fmt::print("{}\n", j.dump(4));
                            } else {
                                for (const auto &m : c.messages) fmt::print("{}\n", m);
                                if (c.errors) fmt::print("\n{} errors were found on the image.\n", c.errors);
                                if (c.leaks) fmt::print("\n{} leaked clusters were found on the image.\n", c.leaks);
                                if (c.clean) fmt::print("No errors were found on the image.\n");
                                if (c.total_clusters)
                                    fmt::print("{}/{} = {:.2f}% allocated\n", c.allocated_clusters, c.total_clusters,
                                               100.0 * static_cast<double>(c.allocated_clusters) / static_cast<double>(c.total_clusters));
                                if (c.image_end_offset) fmt::print("Image end offset: {}\n", *c.image_end_offset);
                            }
                            if (!c.clean) return report_message(fmt::format("'{}' is not clean: {} errors, {} leaks", a->file, c.errors, c.leaks));
                            return exit_ok;
                        }});
}

}  // namespace

void register_image_commands(CLI::App &root, std::vector<Command> &commands) {
    register_info(root, commands);
    register_convert(root, commands);
    register_compare(root, commands);
    register_map(root, commands);
    register_check(root, commands);
}

}  // namespace hsdk
