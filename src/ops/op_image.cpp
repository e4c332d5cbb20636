// Operations on disk images: image.info, image.probe, image.formats, image.convert, image.compare,
// image.check, image.map, file.sha256.
#include "ops/context.hpp"

#include "io/artifact.hpp"
#include "io/artifact_crypto.hpp"
#include "io/compression.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>
#include <hypersdk/hash.hpp>

#include <fmt/format.h>

#include <array>
#include <filesystem>
#include <fstream>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

Result<json> image_info(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto options, open_options(c));
    HSDK_TRY(auto image, open_image(str(r, "path"), options));
    const auto chain = image->chain_info();
    if (flag(r, "backing_chain")) return chain_to_json(chain);
    json j = to_json(chain.front());
    if (chain.size() > 1) j["full-backing-filename"] = chain[1].filename;
    return j;
}

Result<json> image_probe(Context &c) {
    HSDK_TRY(auto options, open_options(c));
    HSDK_TRY(auto name, probe_format(str(c.request(), "path"), options.http));
    return json{{"format", name}};
}

Result<json> image_formats(Context &) { return json{{"readable", readable_formats()}, {"writable", writable_formats()}}; }

// A sealed output (compressed as a stream and/or encrypted): converted under a hidden name beside
// the destination (mode 0600), sealed into the destination (published atomically), the plaintext
// removed whatever happens.
Result<json> convert_sealed(Context &c, const CompressionOptions &compression, const std::optional<EncryptionOptions> &encryption,
                            const OpenOptions &source_options, const std::string &destination, const ConvertOptions &o) {
    const EncryptionOptions *enc = encryption ? &*encryption : nullptr;
    HSDK_TRYV(io::check_artifact_options(compression, enc));
    if (!compression.empty() && o.output_format != "raw" && !o.output_format.empty())
        return fail(Errc::invalid_argument, fmt::format("compression {} applies to raw outputs; {} compresses in its own format "
                                                        "(compress = true, qemu-img's -c)",
                                                        compression.method, o.output_format));
    if (o.skip_create) return fail(Errc::invalid_argument, "invalid request: a compressed or encrypted output cannot be written into an existing target (skip_create)");
    if (!o.overwrite && std::filesystem::exists(destination))
        return fail(Errc::conflict, fmt::format("output '{}' already exists (overwrite not allowed)", destination));
    const auto dest = std::filesystem::path(destination);
    const auto plain = dest.parent_path() / fmt::format(".{}.hsdk-plain-{}", dest.filename().string(), c.job_id().substr(0, 8));
    struct Remove {
        std::filesystem::path path;
        ~Remove() {
            std::error_code ec;
            std::filesystem::remove(path, ec);
        }
    } remove_plain{plain};
    {
        // Created 0600 before the conversion writes into it: plaintext is never readable by others.
        std::ofstream(plain).close();
        std::error_code ec;
        std::filesystem::permissions(plain, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    }
    ConvertOptions plain_options = o;
    plain_options.overwrite = true;
    HSDK_TRY(auto s, convert(str(c.request(), "source"), source_options, plain.string(), plain_options));
    HSDK_TRY(auto sealed, io::seal_file(plain.string(), destination, compression, enc, o.overwrite));
    json out{{"virtual_size", s.virtual_size},
             {"bytes_read", s.bytes_read},
             {"bytes_written", s.bytes_written},
             {"output_size", sealed.bytes},
             {"seconds", s.seconds}};
    if (sealed.encryption) out["encryption"] = to_json(*sealed.encryption);
    if (!compression.empty()) out["compression"] = compression.method;
    return out;
}

Result<json> image_convert(Context &c) {
    const auto &r = c.request();
    ConvertOptions o;
    o.output_format = str(r, "output_format");
    HSDK_TRY(o.format_options, format_options(r, "options"));
    o.compress = native_compress(r);
    o.threads = static_cast<unsigned>(u64(r, "threads"));
    o.requests_in_flight = static_cast<unsigned>(u64(r, "requests_in_flight"));
    o.overwrite = flag(r, "overwrite", true);
    o.skip_create = flag(r, "skip_create");
    o.target_is_zero = flag(r, "target_is_zero");
    if (r.contains("sparse_size")) o.sparse_size = u64(r, "sparse_size");
    HSDK_TRYV(set_cache_mode(o, str(r, "cache")));
    o.progress = c.progress();
    o.cancel = c.cancel();
    HSDK_TRY(auto source_options, open_options(c, "source_format"));
    const std::string destination = str(r, "destination");
    const CompressionOptions compression = stream_compression(r);
    const auto encryption = encryption_options(r);
    if (!compression.empty() || encryption) return convert_sealed(c, compression, encryption, source_options, destination, o);
    HSDK_TRY(auto s, convert(str(r, "source"), source_options, destination, o));
    return json{{"virtual_size", s.virtual_size},
                {"bytes_read", s.bytes_read},
                {"bytes_written", s.bytes_written},
                {"output_size", s.output_size},
                {"seconds", s.seconds}};
}

Result<json> image_compare(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto a_options, open_options(c, "a_format"));
    HSDK_TRY(auto b_options, open_options(c, "b_format"));
    HSDK_TRY(auto a, open_image(str(r, "a"), a_options));
    HSDK_TRY(auto b, open_image(str(r, "b"), b_options));
    CompareOptions o;
    o.strict = flag(r, "strict");
    o.progress = c.progress();
    o.cancel = c.cancel();
    HSDK_TRY(auto cmp, compare(*a, *b, o));
    return json{{"identical", cmp.identical},
                {"first_difference", cmp.identical ? json(nullptr) : json(cmp.first_difference)},
                {"reason", cmp.identical ? std::string() : cmp.reason},
                {"a_virtual_size", a->virtual_size()},
                {"b_virtual_size", b->virtual_size()}};
}

Result<json> image_check(Context &c) {
    const auto &r = c.request();
    const std::string path = str(r, "path");
    HSDK_TRY(auto options, open_options(c));
    HSDK_TRY(auto report, check_image(path, options));
    json j{{"filename", display_location(path)},
           {"format", report.format},
           {"clean", report.clean},
           {"corruptions", report.corruptions},
           {"leaks", report.leaks},
           {"check-errors", report.check_errors},
           {"messages", report.messages}};
    if (report.total_clusters) {
        j["allocated-clusters"] = report.allocated_clusters;
        j["total-clusters"] = report.total_clusters;
    }
    if (report.image_end_offset) j["image-end-offset"] = *report.image_end_offset;
    return j;
}

Result<json> image_map(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto options, open_options(c));
    HSDK_TRY(auto image, open_image(str(r, "path"), options));
    const std::uint64_t size = image->virtual_size();
    const std::uint64_t offset = u64(r, "offset");
    if (offset > size)
        return fail(Errc::invalid_argument, fmt::format("/offset: {} is beyond the end of the disk ({} bytes)", offset, size));
    std::uint64_t length = r.contains("length") ? u64(r, "length") : size - offset;
    if (length > size - offset)
        return fail(Errc::invalid_argument,
                    fmt::format("/length: {} bytes from offset {} go beyond the end of the disk ({} bytes)", length, offset, size));
    json extents = json::array();
    // A window at a time, so a cancel is seen between windows of a huge, fragmented disk.
    constexpr std::uint64_t window = 64ULL << 30;
    for (std::uint64_t pos = offset, end = offset + length; pos < end;) {
        HSDK_TRYV(c.cancel().check());
        const std::uint64_t n = std::min(window, end - pos);
        HSDK_TRY(auto runs, image->block_status(pos, n));
        for (const auto &e : runs) {
            json j{{"start", e.offset},
                   {"length", e.length},
                   {"depth", e.depth},
                   {"present", e.kind != ExtentKind::hole},
                   {"zero", e.kind != ExtentKind::data},
                   {"data", e.kind == ExtentKind::data}};
            if (e.host_offset != no_host_offset) j["offset"] = e.host_offset;
            // Runs that continue across a window boundary read as one, as qemu-img prints them.
            if (!extents.empty()) {
                auto &last = extents.back();
                const bool contiguous_host = !last.contains("offset") ? !j.contains("offset")
                                                                       : j.contains("offset") &&
                                                                             last["offset"].get<std::uint64_t>() +
                                                                                     last["length"].get<std::uint64_t>() ==
                                                                                 j["offset"].get<std::uint64_t>();
                if (last["start"].get<std::uint64_t>() + last["length"].get<std::uint64_t>() == e.offset &&
                    last["depth"] == j["depth"] && last["present"] == j["present"] && last["zero"] == j["zero"] &&
                    last["data"] == j["data"] && contiguous_host) {
                    last["length"] = last["length"].get<std::uint64_t>() + e.length;
                    continue;
                }
            }
            extents.push_back(std::move(j));
        }
        pos += n;
    }
    return json{{"virtual_size", size}, {"extents", std::move(extents)}};
}

Result<json> file_sha256(Context &c) {
    HSDK_TRY(auto hex, file_digest_hex(str(c.request(), "path"), DigestAlgorithm::sha256, c.cancel()));
    return json{{"sha256", hex}};
}

// What a platform takes. Azure: a fixed VHD whose data is a whole number of MiB, the file that
// data plus the 512-byte footer, at most Azure's largest managed disk.
Result<json> image_validate(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto options, open_options(c));
    HSDK_TRY(auto image, open_image(str(r, "path"), options));
    const auto info = image->chain_info().front();
    constexpr std::uint64_t MiB = 1ull << 20;
    constexpr std::uint64_t azure_limit = 32767ull << 30;
    json problems = json::array();
    const bool vhd = info.format == "vhd";
    if (!vhd)
        problems.push_back(fmt::format("it is {}, not a VHD: convert it with -O vhd -o subformat=fixed,azure=on", info.format));
    else if (info.subformat != "fixed")
        problems.push_back(fmt::format("it is a {} VHD; Azure takes fixed VHDs only: convert it with -O vhd -o subformat=fixed,azure=on",
                                       info.subformat));
    if (info.virtual_size % MiB != 0)
        problems.push_back(fmt::format("its virtual size, {} bytes, is not a whole number of MiB (Azure needs one): convert with -o "
                                       "azure=on, which rounds it up",
                                       info.virtual_size));
    if (info.virtual_size > azure_limit)
        problems.push_back(fmt::format("its virtual size, {} bytes, is over Azure's managed-disk limit of 32,767 GiB", info.virtual_size));
    if (vhd && info.subformat == "fixed") {
        HSDK_TRY(auto file, open_byte_source(str(r, "path"), options.http));
        if (file->size() != info.virtual_size + 512)
            problems.push_back(fmt::format("the file is {} bytes, not the data plus the 512-byte footer ({} bytes): it was cut or "
                                           "extended after it was made",
                                           file->size(), info.virtual_size + 512));
    }
    return json{{"ok", problems.empty()},       {"target", str(r, "target")}, {"format", info.format},
                {"subformat", info.subformat},  {"virtual_size", info.virtual_size}, {"problems", std::move(problems)}};
}

// file.encrypt / file.decrypt: a whole file into or out of the aes-256-gcm envelope.
Result<json> file_crypt(Context &c, bool encrypting) {
    const auto &r = c.request();
    const std::string in = str(r, "input"), out = str(r, "output");
    if (encrypting) {
        const EncryptionOptions e = encryption_keys(r, "method");
        HSDK_TRYV(io::check_encryption(e));
        HSDK_TRY(auto record, io::encrypt_file_with(e, in, out, flag(r, "overwrite")));
        std::error_code ec;
        const auto size = std::filesystem::file_size(out, ec);
        return json{{"output", out}, {"bytes", ec ? 0 : size}, {"method", record.method}, {"key", record.key}, {"recipients", record.recipients}};
    }
    DecryptionKeys keys;
    keys.passphrase_file = str(r, "passphrase_file");
    keys.passphrase_env = str(r, "passphrase_env");
    keys.key_file = str(r, "key_file");
    keys.identities = string_list(r, "identity");
    keys.gpg_home = str(r, "gpg_home");
    HSDK_TRY(auto method, io::decrypt_file_with(keys, in, out, flag(r, "overwrite")));
    std::error_code ec;
    const auto size = std::filesystem::file_size(out, ec);
    const std::string key = method == io::CryptMethod::gpg ? "gpg agent"
                            : !keys.identities.empty()     ? "identity"
                            : !keys.key_file.empty()       ? "key file"
                                                           : "passphrase";
    return json{{"output", out}, {"bytes", ec ? 0 : size}, {"method", std::string(io::crypt_method_name(method))}, {"key", key},
                {"recipients", json::array()}};
}

// file.compress / file.decompress: a whole file into or out of a gzip, zstd or lz4 stream.
Result<json> file_compress(Context &c) {
    const auto &r = c.request();
    HSDK_TRY(auto method, io::parse_compression(str(r, "method")));
    const std::string in = str(r, "input"), out = str(r, "output");
    HSDK_TRYV(io::compress_file(method, static_cast<int>(u64(r, "level")), in, out, flag(r, "overwrite")));
    std::error_code ec;
    const auto size = std::filesystem::file_size(out, ec);
    return json{{"output", out}, {"bytes", ec ? 0 : size}, {"method", std::string(io::compression_name(method))}};
}

Result<json> file_decompress(Context &c) {
    const auto &r = c.request();
    const std::string in = str(r, "input"), out = str(r, "output");
    // Through the conversion engine, as a raw image to a raw file: units decoded ahead in parallel,
    // zero runs left as holes, large aligned writes in flight, the output published atomically.
    HttpSourceOptions plain;
    plain.decompress = false;
    plain.cancel = c.cancel();
    HSDK_TRY(auto stored, open_byte_source(in, plain));
    io::DecompressOptions d;
    d.cancel = c.cancel();
    d.native_format = "raw";
    HSDK_TRY(auto source, io::open_decompressed_source(std::move(stored), d));
    const io::Compression method = io::decompressed_info(*source)->compression;
    OpenOptions as_raw;
    as_raw.format = "raw";
    HSDK_TRY(auto image, open_image_source(std::move(source), as_raw));
    ConvertOptions o;
    o.output_format = "raw";
    o.overwrite = flag(r, "overwrite");
    o.progress = c.progress();
    o.cancel = c.cancel();
    HSDK_TRYV(convert(*image, out, o));
    std::error_code ec;
    const auto size = std::filesystem::file_size(out, ec);
    return json{{"output", out}, {"bytes", ec ? 0 : size}, {"method", std::string(io::compression_name(method))}};
}

Result<json> file_encrypt(Context &c) { return file_crypt(c, true); }
Result<json> file_decrypt(Context &c) { return file_crypt(c, false); }

const HandlerEntry image_table[] = {
    {"image.validate", image_validate},
    {"image.info", image_info},       {"image.probe", image_probe},     {"image.formats", image_formats},
    {"image.convert", image_convert}, {"image.compare", image_compare}, {"image.check", image_check},
    {"image.map", image_map},         {"file.sha256", file_sha256},     {"file.encrypt", file_encrypt},
    {"file.decrypt", file_decrypt},   {"file.compress", file_compress}, {"file.decompress", file_decompress},
};

}  // namespace

std::span<const HandlerEntry> image_handlers() { return image_table; }

}  // namespace hypersdk::ops
