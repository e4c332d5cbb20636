// Image commands, mirroring qemu-img: info, convert, compare, map, check. Each is a request to one
// operation of the library (image.info, image.convert, ...), rendered as qemu-img renders it.
#include "commands.hpp"

#include <fmt/format.h>

#include <memory>

namespace hsdk {
namespace {

using json = nlohmann::json;

void print_info_human(const json &info) {
    fmt::print("image: {}\n", info.value("filename", ""));
    fmt::print("file format: {}\n", info.value("format", ""));
    if (info.contains("subformat")) fmt::print("subformat: {}\n", info["subformat"].get<std::string>());
    const std::uint64_t vsize = info.value("virtual-size", std::uint64_t{0});
    fmt::print("virtual size: {} ({} bytes)\n", human_size(vsize), vsize);
    fmt::print("disk size: {}\n", human_size(info.value("actual-size", std::uint64_t{0})));
    if (info.contains("cluster-size")) fmt::print("cluster_size: {}\n", info["cluster-size"].get<std::uint64_t>());
    if (info.contains("backing-filename")) fmt::print("backing file: {}\n", info["backing-filename"].get<std::string>());
    if (info.contains("backing-filename-format"))
        fmt::print("backing file format: {}\n", info["backing-filename-format"].get<std::string>());
    if (info.value("dirty-flag", false)) fmt::print("dirty: yes\n");
    if (info.contains("format-specific") && !info["format-specific"].value("data", json::object()).empty()) {
        fmt::print("Format specific information:\n");
        print_tree(info["format-specific"]["data"], 4);
    }
}

struct SourceFlags {
    std::string format;
    bool allow_external = false;
    // Adds the flags to a request, the format under `format_key`.
    void add_to(json &request, const char *format_key = "format") const {
        if (!format.empty()) request[format_key] = format;
        if (allow_external) request["allow_external_files"] = true;
    }
};

void add_source_flags(CLI::App *app, SourceFlags &f, const char *flag = "-f,--format") {
    app->add_option(flag, f.format, "Source format (raw, qcow2, vmdk, vhd/vpc, vhdx, vdi); probed when omitted");
    app->add_flag("--allow-external-files", f.allow_external,
                  "Follow backing files and extents outside the image's folder (off by default, see OSSA-2024-001)");
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
                            json request{{"path", a->file}, {"backing_chain", a->chain}};
                            a->src.add_to(request);
                            json info;
                            if (int s = run_op("image.info", request, info); s != exit_ok) return s;
                            if (a->json) {
                                fmt::print("{}\n", info.dump(4));
                                return exit_ok;
                            }
                            for (const json *i = &info; i != nullptr; i = i->contains("backing-image") ? &(*i)["backing-image"] : nullptr) {
                                if (i != &info) fmt::print("\n");
                                print_info_human(*i);
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
                            std::string options, error;
                            if (!join_format_options(a->options, options, error)) return report_message(error, exit_usage);
                            json request{{"source", a->source},     {"destination", a->destination}, {"output_format", a->out_format},
                                         {"compress", a->compress}, {"threads", a->threads},         {"cache", a->cache}};
                            if (!options.empty()) request["options"] = options;
                            a->src.add_to(request, "source_format");
                            json result;
                            return run_op("image.convert", request, result, a->progress ? terminal_progress_bar() : nullptr);
                        }});
}

void register_compare(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand(
        "compare", "Compare two images' contents (exit 0 identical, 1 different, 2 usage, 3 error)");
    struct Args {
        SourceFlags a;
        std::string b_format;
        bool strict = false;
        bool progress = false;
        std::string first, second;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->a);
    app->add_option("-F", a->b_format, "Format of the second image");
    app->add_flag("-s,--strict", a->strict, "Sizes and allocation must match too");
    app->add_flag("-p,--progress", a->progress, "Show a progress bar on a terminal");
    app->add_option("image1", a->first, "First image")->required();
    app->add_option("image2", a->second, "Second image")->required();
    commands.push_back({app, [a]() {
                            constexpr int compare_error = 3;
                            json request{{"a", a->first}, {"b", a->second}, {"strict", a->strict}};
                            a->a.add_to(request, "a_format");
                            if (!a->b_format.empty()) request["b_format"] = a->b_format;
                            json r;
                            if (int s = run_op("image.compare", request, r, a->progress ? terminal_progress_bar() : nullptr, compare_error);
                                s != exit_ok)
                                return s == exit_usage ? exit_usage : compare_error;
                            if (r["identical"].get<bool>()) {
                                fmt::print("Images are identical.\n");
                                return exit_ok;
                            }
                            fmt::print("Content mismatch at offset {}! ({})\n", r["first_difference"].get<std::uint64_t>(),
                                       r["reason"].get<std::string>());
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
                            json request{{"path", a->file}};
                            a->src.add_to(request);
                            json map;
                            if (int s = run_op("image.map", request, map); s != exit_ok) return s;
                            if (a->json) {
                                fmt::print("{}\n", map["extents"].dump());
                                return exit_ok;
                            }
                            // The file of each layer, for the "File" column.
                            json chain;
                            request["backing_chain"] = true;
                            if (int s = run_op("image.info", request, chain); s != exit_ok) return s;
                            std::vector<std::string> files;
                            for (const json *i = &chain; i != nullptr; i = i->contains("backing-image") ? &(*i)["backing-image"] : nullptr)
                                files.push_back(i->value("filename", ""));
                            fmt::print("{:<16}{:<16}{:<16}{}\n", "Offset", "Length", "Mapped to", "File");
                            for (const auto &e : map["extents"]) {
                                if (!e["data"].get<bool>()) continue;
                                const auto depth = e["depth"].get<std::size_t>();
                                const std::string file = depth < files.size() ? files[depth] : "";
                                const std::string mapped = e.contains("offset") ? fmt::format("{:#x}", e["offset"].get<std::uint64_t>()) : "-";
                                fmt::print("{:<16}{:<16}{:<16}{}\n", fmt::format("{:#x}", e["start"].get<std::uint64_t>()),
                                           fmt::format("{:#x}", e["length"].get<std::uint64_t>()), mapped, file);
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
    app->add_flag("--json", a->json, "Print JSON (the image.check result: qemu-img check's keys and clean)");
    app->add_option("file", a->file, "Image file")->required();
    commands.push_back({app, [a]() {
                            json request{{"path", a->file}};
                            a->src.add_to(request);
                            json c;
                            if (int s = run_op("image.check", request, c); s != exit_ok) return s;
                            const auto errors = c["check-errors"].get<std::uint64_t>(), leaks = c["leaks"].get<std::uint64_t>();
                            if (a->json) {
                                fmt::print("{}\n", c.dump(4));
                            } else {
                                for (const auto &m : c["messages"]) fmt::print("{}\n", m.get<std::string>());
                                if (errors) fmt::print("\n{} errors were found on the image.\n", errors);
                                if (leaks) fmt::print("\n{} leaked clusters were found on the image.\n", leaks);
                                if (c["clean"].get<bool>()) fmt::print("No errors were found on the image.\n");
                                if (c.contains("total-clusters")) {
                                    const auto alloc = c["allocated-clusters"].get<std::uint64_t>(), total = c["total-clusters"].get<std::uint64_t>();
                                    fmt::print("{}/{} = {:.2f}% allocated\n", alloc, total,
                                               total ? 100.0 * static_cast<double>(alloc) / static_cast<double>(total) : 0.0);
                                }
                                if (c.contains("image-end-offset")) fmt::print("Image end offset: {}\n", c["image-end-offset"].get<std::uint64_t>());
                            }
                            if (!c["clean"].get<bool>())
                                return report_message(fmt::format("'{}' is not clean: {} errors, {} leaks", a->file, errors, leaks));
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
