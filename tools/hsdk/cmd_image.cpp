// Image commands, mirroring qemu-img: info, convert, compare, map, check. Each is a request to one
// operation of the library (image.info, image.convert, ...), rendered as qemu-img renders it.
#include "artifact_flags.hpp"
#include "commands.hpp"

#include "progress_display.hpp"
#include "provider_flags.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
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
    if (info.contains("actual-size")) fmt::print("disk size: {}\n", human_size(info["actual-size"].get<std::uint64_t>()));
    else fmt::print("disk size: unavailable\n");
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
    // For http(s) sources.
    std::vector<std::string> headers;
    std::string headers_file;
    bool insecure = false;
    std::string ca_file;
    unsigned timeout = 0;
    AwsFlags aws;  // ebs:// and s3:// sources
    std::string storage_endpoint;  // gs:// sources
    // Encrypted sources (and, with convert --encrypt, the output's key).
    KeyFlags keys;
    // Adds the flags to a request, the format under `format_key`.
    void add_to(json &request, const char *format_key = "format") const {
        if (!format.empty()) request[format_key] = format;
        if (allow_external) request["allow_external_files"] = true;
        if (!headers.empty()) request["headers"] = headers;
        if (!headers_file.empty()) request["headers_file"] = headers_file;
        if (insecure) request["insecure"] = true;
        if (!ca_file.empty()) request["ca_file"] = ca_file;
        if (timeout != 0) request["timeout"] = timeout;
        if (!aws.empty()) request["aws"] = aws.request();
        if (!storage_endpoint.empty()) request["gcs"] = json{{"storage_endpoint", storage_endpoint}};
        if (auto k = keys.decrypt_request(); !k.empty()) request["decrypt"] = k;
    }
    // RunOptions whose format hint names `flag` for `path` when no format was given.
    [[nodiscard]] RunOptions hint(const std::string &path, const std::string &flag) const {
        RunOptions how;
        if (format.empty()) how.format_flags.emplace_back(path, flag);
        return how;
    }
};

void add_source_flags(CLI::App *app, SourceFlags &f, const char *flag = "-f,--format") {
    app->add_option(flag, f.format, "Source format (raw, qcow2, vmdk, vhd/vpc, vhdx, vdi); probed when omitted");
    app->add_flag("--allow-external-files", f.allow_external,
                  "Follow backing files and extents outside the image's folder (off by default, see OSSA-2024-001)");
    // Sources may be http:// or https:// URLs, read with Range requests like qemu-img's curl driver.
    app->add_option("--header", f.headers,
                    "Send this header ('Name: value') with every request for an http(s) image (repeatable); "
                    "prefer --header-file for tokens: arguments are visible to other users");
    app->add_option("--header-file", f.headers_file, "Read more headers for http(s) images from FILE, one 'Name: value' per line");
    auto *insecure = app->add_flag("--insecure,-k", f.insecure,
                                   "https images: do not verify the server certificate; http images: allow credentials in clear text");
    auto *ca = app->add_option("--ca-file", f.ca_file, "https images: trust the certificates in this PEM file instead of the system store");
    insecure->excludes(ca);
    app->add_option("--timeout", f.timeout, "http(s) images: seconds a request may move no byte before it is retried (default 60)")
        ->check(CLI::Range(1u, 3600u));
    add_aws_flags(app, f.aws, "ebs:// and s3:// images");
    app->add_option("--storage-endpoint", f.storage_endpoint,
                    "gs:// images: Cloud Storage at this URL (default: $STORAGE_EMULATOR_HOST, else https://storage.googleapis.com); "
                    "credentials from $GOOGLE_APPLICATION_CREDENTIALS or the metadata server");
    add_key_flags(app, f.keys, "encrypted images (the method recognised from the header)");
}

// The nested backing-image chain of image.info as the flat array qemu-img info --backing-chain
// --output=json prints (top image first, no "backing-image" keys).
json chain_array(json info) {
    json out = json::array();
    for (;;) {
        json next;
        if (info.contains("backing-image")) {
            next = std::move(info["backing-image"]);
            info.erase("backing-image");
        }
        out.push_back(std::move(info));
        if (next.is_null()) return out;
        info = std::move(next);
    }
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
    add_output_flags(app, a->json, "as qemu-img info --output=json (with --backing-chain: an array, top image first)");
    app->add_flag("--backing-chain", a->chain, "Show every image of the backing chain");
    app->add_option("file", a->file, "Image file")->required();
    commands.push_back({app, [a]() {
                            json request{{"path", a->file}, {"backing_chain", a->chain}};
                            a->src.add_to(request);
                            json info;
                            if (int s = run_op("image.info", request, info, a->src.hint(a->file, "-f")); s != exit_ok) return s;
                            if (a->json) {
                                fmt::print("{}\n", (a->chain ? chain_array(std::move(info)) : info).dump(4));
                                return exit_ok;
                            }
                            for (const json *i = &info; i != nullptr; i = i->contains("backing-image") ? &(*i)["backing-image"] : nullptr) {
                                if (i != &info) fmt::print("\n");
                                print_info_human(*i);
                            }
                            return exit_ok;
                        }});
}

// The writable formats, for -O's check and its message.
const std::vector<std::string> &output_formats() {
    static const std::vector<std::string> names = {"raw", "qcow2", "vmdk", "vhd", "vpc", "vhdx", "vdi"};
    return names;
}

// "64k", "1M", "512": a size as qemu-img takes it (-S).
bool parse_size(const std::string &text, std::uint64_t &out) {
    if (text.empty()) return false;
    std::size_t used = 0;
    unsigned long long n = 0;
    try {
        n = std::stoull(text, &used, 10);
    } catch (...) {
        return false;
    }
    std::uint64_t mult = 1;
    const std::string rest = text.substr(used);
    if (rest == "k" || rest == "K") mult = 1ULL << 10;
    else if (rest == "M") mult = 1ULL << 20;
    else if (rest == "G") mult = 1ULL << 30;
    else if (!rest.empty() && rest != "b" && rest != "B") return false;
    if (n > UINT64_MAX / mult) return false;
    out = n * mult;
    return true;
}

// The output format a destination's name gives: out.qcow2, disk.vhdx, disk.raw.zst (a compressed
// stream of raw data), disk.img; empty when it says none.
std::string format_from_extension(std::string name) {
    for (const char *stream : {".gz", ".zst", ".lz4"}) {
        const std::string s(stream);
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
            name.resize(name.size() - s.size());
            break;
        }
    }
    const auto dot = name.rfind('.');
    const auto slash = name.rfind('/');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
    std::string ext = name.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == "img") return "raw";
    if (ext == "vhd") return "vpc";
    for (const char *f : {"raw", "qcow2", "vmdk", "vhdx", "vdi", "vpc"})
        if (ext == f) return ext;
    return {};
}

void register_convert(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("convert", "Convert a disk image to another format (into a file, or a block device in place)");
    struct Args {
        SourceFlags src;
        std::string out_format;
        std::vector<std::string> options;
        bool progress = false;
        unsigned threads = 0;
        unsigned requests_in_flight = 0;
        unsigned requests = 0;
        bool out_of_order = false;
        bool skip_create = false;
        bool target_is_zero = false;
        std::string sparse, backing, backing_format;
        std::string cache = "none";
        std::string source, destination;
        EncryptFlags encrypt;
        CompressFlags compression;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->src);
    add_encrypt_flags(app, a->encrypt);
    app->add_option("-t,--cache", a->cache,
                    "Output cache mode: none (O_DIRECT for aligned data, fsync; the default), writeback (page cache, "
                    "fsync) or unsafe (page cache, no fsync: qemu-img convert's default)")
        ->check(CLI::IsMember({"none", "writeback", "unsafe"}));
    app->add_option("-O,--output-format", a->out_format,
                    "Output format: raw, qcow2, vmdk, vhd (vpc), vhdx, vdi (default: from the destination's extension, e.g. "
                    "out.qcow2, disk.raw.zst)")
        ->check(CLI::Validator(
            [](std::string &v) -> std::string {
                const auto &f = output_formats();
                if (std::find(f.begin(), f.end(), v) != f.end()) return {};
                return fmt::format("unknown output format '{}': expected raw, qcow2, vmdk, vhd (vpc), vhdx or vdi", v);
            },
            "FORMAT", "output format"));
    app->add_option("-o,--options", a->options, "Output options key=value[,key=value...] (repeatable)");
    add_compress_flags(app, a->compression, "Compress where the output format can (qcow2, vmdk streamOptimized)");
    app->add_flag("-p,--progress", a->progress, "Show progress: a bar on a terminal, a line every few seconds elsewhere");
    app->add_option("--threads", a->threads, "Worker threads (default: one per core)")->check(CLI::Range(0u, 256u));
    app->add_option("-m", a->requests, "Parallel requests, as qemu-img -m: taken as --threads")->check(CLI::Range(1u, 256u));
    app->add_option("--requests-in-flight", a->requests_in_flight,
                    "Reads of a remote source kept in flight ahead of the conversion (window grows from 4 to N while it waits; "
                    "default: 16 for a URL, s3:// or gs://, none for a local file; 1: no read-ahead)")
        ->check(CLI::Range(0u, 256u));
    app->add_flag("-W", a->out_of_order,
                  "Out-of-order writes, as qemu-img -W: accepted; writes always run in parallel, the image stays consistent");
    app->add_flag("-n", a->skip_create,
                  "Skip creating the destination: write into the existing raw file or device as it is (a device is always "
                  "written in place)");
    app->add_flag("--target-is-zero", a->target_is_zero,
                  "The destination written in place already reads as zeros: do not zero the ranges no data lands on");
    app->add_option("-S", a->sparse,
                    "Sparse detection: zero runs of at least SIZE bytes become holes (default: the output's granularity); "
                    "0 writes every byte")
        ->type_name("SIZE");
    app->add_option("-B", a->backing, "Backing file of the output (qcow2): only what differs from it is written");
    app->add_option("-F", a->backing_format, "Format of the backing file given with -B");
    app->add_option("source", a->source, "Source image")->required();
    app->add_option("destination", a->destination, "Destination file or block device")->required();
    commands.push_back({app, [a]() {
                            // out.raw.zst: a zstd stream, unless the flags say otherwise.
                            if (a->compression.method.empty() && !a->compression.native)
                                for (const auto &[suffix, method] : {std::pair<std::string, std::string>{".gz", "gzip"}, {".zst", "zstd"}, {".lz4", "lz4"}})
                                    if (a->destination.size() > suffix.size() &&
                                        a->destination.compare(a->destination.size() - suffix.size(), suffix.size(), suffix) == 0)
                                        a->compression.method = method;
                            if (a->out_format.empty()) {
                                a->out_format = format_from_extension(a->destination);
                                if (a->out_format.empty())
                                    return report_message(fmt::format("give the output format with -O: '{}' has no extension that names one "
                                                                      "(.raw, .img, .qcow2, .vmdk, .vhd, .vhdx, .vdi)",
                                                                      a->destination),
                                                          exit_usage);
                            }
                            std::vector<std::string> texts = a->options;
                            if (!a->backing.empty()) texts.push_back("backing_file=" + escape_option_value(a->backing));
                            if (!a->backing_format.empty()) {
                                if (a->backing.empty()) return report_message("-F names the format of the backing file: give -B too", exit_usage);
                                texts.push_back("backing_fmt=" + escape_option_value(a->backing_format));
                            }
                            std::string options, error;
                            if (!join_format_options(texts, options, error)) return report_message(error, exit_usage);
                            json request{{"source", a->source},     {"destination", a->destination}, {"output_format", a->out_format},
                                         {"threads", a->requests ? a->requests : a->threads},
                                         {"requests_in_flight", a->requests_in_flight},
                                         {"cache", a->cache},       {"skip_create", a->skip_create},
                                         {"target_is_zero", a->target_is_zero}};
                            if (!a->sparse.empty()) {
                                std::uint64_t size = 0;
                                if (!parse_size(a->sparse, size))
                                    return report_message(fmt::format("-S '{}' is not a size (e.g. 4k, 64k, 0)", a->sparse), exit_usage);
                                request["sparse_size"] = size;
                            }
                            if (!options.empty()) request["options"] = options;
                            a->src.add_to(request, "source_format");
                            if (!add_compress_request(a->compression, request, error)) return report_message(error, exit_usage);
                            if (!add_encrypt_request(a->encrypt, a->src.keys, request, error)) return report_message(error, exit_usage);
                            json result;
                            RunOptions how = a->src.hint(a->source, "-f");
                            if (a->progress) how.progress = progress_display();
                            return run_op("image.convert", request, result, std::move(how));
                        }});
}

void register_compare(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("compare",
                                    "Compare two images' contents (exit 0 identical, 1 different, 2 error, as qemu-img compare)");
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
    app->add_flag("-p,--progress", a->progress, "Show progress: a bar on a terminal, a line every few seconds elsewhere");
    app->add_option("image1", a->first, "First image")->required();
    app->add_option("image2", a->second, "Second image")->required();
    commands.push_back({app, [a]() {
                            constexpr int compare_error = 2;
                            json request{{"a", a->first}, {"b", a->second}, {"strict", a->strict}};
                            a->a.add_to(request, "a_format");
                            if (!a->b_format.empty()) request["b_format"] = a->b_format;
                            RunOptions how = a->a.hint(a->first, "-f");
                            if (a->b_format.empty()) how.format_flags.emplace_back(a->second, "-F");
                            how.error_status = compare_error;
                            if (a->progress) how.progress = progress_display();
                            json r;
                            if (int s = run_op("image.compare", request, r, std::move(how)); s != exit_ok) return s;
                            const bool sizes_differ = r["a_virtual_size"] != r["b_virtual_size"];
                            if (sizes_differ && a->strict) {
                                fmt::print("Strict mode: Image size mismatch!\n");
                                return 1;
                            }
                            if (sizes_differ) fmt::print("Warning: Image size mismatch!\n");
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
    add_output_flags(app, a->json, "as qemu-img map --output=json");
    app->add_option("file", a->file, "Image file")->required();
    commands.push_back({app, [a]() {
                            json request{{"path", a->file}};
                            a->src.add_to(request);
                            json map;
                            if (int s = run_op("image.map", request, map, a->src.hint(a->file, "-f")); s != exit_ok) return s;
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
    auto *app = root.add_subcommand(
        "check", "Check an image's metadata (read-only; exit 0 clean, 1 check failed, 2 corruptions, 3 leaks only, as qemu-img)");
    struct Args {
        SourceFlags src;
        bool json = false;
        std::string file;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->src);
    add_output_flags(app, a->json, "as qemu-img check --output=json (corruptions, leaks, check-errors, ...) plus clean and messages");
    app->add_option("file", a->file, "Image file")->required();
    commands.push_back({app, [a]() {
                            constexpr int check_failed = 1, corrupt = 2, leaked = 3;
                            json request{{"path", a->file}};
                            a->src.add_to(request);
                            json c;
                            RunOptions how = a->src.hint(a->file, "-f");
                            how.error_status = check_failed;
                            if (int s = run_op("image.check", request, c, std::move(how)); s != exit_ok) return s;
                            const auto corruptions = c["corruptions"].get<std::uint64_t>(), leaks = c["leaks"].get<std::uint64_t>(),
                                       check_errors = c["check-errors"].get<std::uint64_t>();
                            if (a->json) {
                                fmt::print("{}\n", c.dump(4));
                            } else {
                                // What was found goes to stderr and the summary to stdout, as qemu-img prints them.
                                for (const auto &m : c["messages"]) std::fprintf(stderr, "%s\n", m.get<std::string>().c_str());
                                if (c["clean"].get<bool>()) fmt::print("No errors were found on the image.\n");
                                if (corruptions)
                                    fmt::print("\n{} errors were found on the image.\nData may be corrupted, or further writes to the "
                                               "image may corrupt it.\n",
                                               corruptions);
                                if (leaks)
                                    fmt::print("\n{} leaked clusters were found on the image.\nThis means waste of disk space, but no "
                                               "harm to data.\n",
                                               leaks);
                                if (check_errors) fmt::print("\n{} internal errors have occurred during the check.\n", check_errors);
                                if (c.contains("total-clusters")) {
                                    const auto alloc = c["allocated-clusters"].get<std::uint64_t>(), total = c["total-clusters"].get<std::uint64_t>();
                                    fmt::print("{}/{} = {:.2f}% allocated\n", alloc, total,
                                               total ? 100.0 * static_cast<double>(alloc) / static_cast<double>(total) : 0.0);
                                }
                                if (c.contains("image-end-offset")) fmt::print("Image end offset: {}\n", c["image-end-offset"].get<std::uint64_t>());
                            }
                            if (check_errors) return check_failed;
                            if (corruptions) return corrupt;
                            if (leaks) return leaked;
                            return exit_ok;
                        }});
}

}  // namespace

void register_validate(CLI::App &root, std::vector<Command> &commands) {
    auto *app = root.add_subcommand("validate", "Tell whether a platform would accept an image, and why not (exit 1 when it would not)");
    struct Args {
        SourceFlags src;
        std::string target, file;
        bool json = false;
    };
    auto a = std::make_shared<Args>();
    add_source_flags(app, a->src);
    app->add_option("--target", a->target, "The platform: azure (a fixed VHD of whole MiB, within 32,767 GiB)")
        ->required()
        ->check(CLI::IsMember({"azure"}));
    add_output_flags(app, a->json, "the verdict and every problem");
    app->add_option("file", a->file, "Image file or URL")->required();
    commands.push_back({app, [a]() {
                            json request{{"path", a->file}, {"target", a->target}}, result;
                            a->src.add_to(request);
                            if (int s = run_op("image.validate", request, result, a->src.hint(a->file, "-f")); s != exit_ok) return s;
                            if (a->json) fmt::print("{}\n", result.dump(2));
                            else if (result["ok"].get<bool>())
                                fmt::print("{}: {} would accept it ({} {}, {} bytes)\n", a->file, a->target, result["subformat"].get<std::string>(),
                                           result["format"].get<std::string>(), result["virtual_size"].get<std::uint64_t>());
                            else
                                for (const auto &p : result["problems"]) fmt::print("{}: {} would refuse it: {}\n", a->file, a->target, p.get<std::string>());
                            return result["ok"].get<bool>() ? exit_ok : 1;
                        }});
}

void register_image_commands(CLI::App &root, std::vector<Command> &commands) {
    register_validate(root, commands);
    register_info(root, commands);
    register_convert(root, commands);
    register_compare(root, commands);
    register_map(root, commands);
    register_check(root, commands);
}

}  // namespace hsdk
