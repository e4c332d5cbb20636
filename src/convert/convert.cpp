// convert(): open the writer, run the pipeline, finish, publish atomically.
#include <hypersdk/convert.hpp>
#include <hypersdk/byte_source.hpp>

#include <hypersdk/log.hpp>

#include "convert/convert_device.hpp"
#include "convert/pipeline.hpp"
#include "convert/prefetch.hpp"
#include "core/executor.hpp"
#include "format/layer.hpp"
#include "io/reference.hpp"
#include "io/atomic_output.hpp"

#include <fmt/format.h>

#include <chrono>
#include <sys/stat.h>

namespace hypersdk {
namespace {

// Reads in flight ahead of a conversion from a location behind a URL or cloud API (see
// ConvertOptions::requests_in_flight): enough to cover a WAN round trip at hundreds of MB/s in
// 1 MiB pieces, well under the per-object request rates object stores document.
constexpr unsigned default_remote_requests = 16;

// The destination must not be any file the source reads from.
Result<void> refuse_overwriting_source(BlockDevice &source, const std::string &destination) {
    auto *image = dynamic_cast<Image *>(&source);
    if (image == nullptr) return success();
    struct stat dst {};
    if (::stat(destination.c_str(), &dst) != 0) return success();
    const auto same = [&dst](const struct stat &st) {
        if (S_ISBLK(dst.st_mode) && S_ISBLK(st.st_mode)) return st.st_rdev == dst.st_rdev;  // two names of one device
        return st.st_dev == dst.st_dev && st.st_ino == dst.st_ino;
    };
    for (const auto &info : image->chain_info()) {
        for (const auto &f : info.files) {
            struct stat st {};
            if (::stat(f.c_str(), &st) == 0 && same(st))
                return fail(Errc::conflict, fmt::format("refusing to overwrite '{}': it is part of the source image", destination));
        }
    }
    return success();
}

}  // namespace

Result<void> set_cache_mode(ConvertOptions &options, std::string_view mode) {
    if (mode == "none") {
        options.direct_io = true;
        options.flush = true;
    } else if (mode == "writeback") {
        options.direct_io = false;
        options.flush = true;
    } else if (mode == "unsafe") {
        options.direct_io = false;
        options.flush = false;
    } else {
        return fail(Errc::invalid_argument,
                    fmt::format("unknown cache mode '{}' (expected none, writeback or unsafe)", mode));
    }
    return success();
}

Result<ConvertStats> convert(BlockDevice &source, const std::string &destination, const ConvertOptions &options) {
    return detail::convert_device(source, destination, options, nullptr);
}

Result<ConvertStats> detail::convert_device(BlockDevice &source, const std::string &destination, const ConvertOptions &options,
                                            const ChangedExtents *only) {
    const auto started = std::chrono::steady_clock::now();
    if (options.output_format.empty()) return fail(Errc::invalid_argument, "no output format given");
    const auto *driver = format::find_driver(options.output_format);
    if (driver == nullptr) return fail(Errc::invalid_argument, fmt::format("unknown output format '{}'", options.output_format));
    if (driver->create == nullptr)
        return fail(Errc::unsupported, fmt::format("unsupported: writing format '{}' is not supported", driver->name));
    HSDK_TRYV(refuse_overwriting_source(source, destination));

    const bool raw_output = std::string_view(driver->name) == "raw";
    if (options.skip_create && !raw_output)
        return fail(Errc::unsupported, fmt::format("skip_create (-n) writes into an existing raw file or device; writing into an "
                                                   "existing {} image is not supported (without -n, a new {} image is written, "
                                                   "also onto a device)",
                                                   driver->name, driver->name));

    io::AtomicOutputSet outputs;
    outputs.set_direct_writes(options.direct_io);
    outputs.set_flush(options.flush);
    io::OutputOptions output_options;
    output_options.overwrite = options.overwrite;
    output_options.skip_create = options.skip_create;
    output_options.target_is_zero = options.target_is_zero;
    outputs.set_output_options(output_options);
    // A failed image written into a device loses its header, so it cannot pass for a whole one
    // (a raw image has no header: its partial content is all there is).
    if (!raw_output) outputs.set_invalidate_on_failure(1u << 20);
    format::CreateRequest request{destination, source.virtual_size(), options.format_options, options.compress, &outputs};
    HSDK_TRY(auto writer, driver->create(request));

    std::unique_ptr<Image> backing;
    if (auto ref = writer->backing(); ref && options.read_backing) {
        // The caller named this backing file, so it may live anywhere they chose.
        HSDK_TRY(auto path, io::resolve_reference(destination, ref->path, /*allow_external=*/true, "backing file"));
        OpenOptions bo;
        bo.format = ref->format;
        bo.allow_external_files = false;
        auto opened = open_image(path, bo);
        if (!opened) return fail(opened.error().with_context("cannot open the output's backing file"));
        backing = std::move(opened).value();
        if (only != nullptr && backing->virtual_size() != source.virtual_size())
            return fail(Errc::invalid_argument,
                        fmt::format("the delta's source has {} bytes but its backing file '{}' has {}: a delta must have the size of "
                                    "its base",
                                    source.virtual_size(), ref->path, backing->virtual_size()));
    }

    if (log_enabled(LogLevel::info)) {
        auto *image = dynamic_cast<Image *>(&source);
        const std::string source_format = image != nullptr ? image->chain_info().front().format : std::string("device");
        const char *cache = options.direct_io ? "none" : (options.flush ? "writeback" : "unsafe");
        log(LogLevel::info,
            fmt::format("convert: {} source of {} bytes -> '{}' ({}{}), {} worker threads, cache mode {}{}", source_format,
                        source.virtual_size(), destination, driver->name, outputs.in_place() ? ", written in place" : "",
                        core::worker_parallelism(options.threads), cache,
                        options.sparse_size ? fmt::format(", sparse size {}", *options.sparse_size) : std::string()));
    }
    ProgressReporter progress(options.progress, options.cancel);
    progress.begin_phase("converting", 0);
    pipeline::PipelineOptions po;
    po.threads = options.threads;
    po.progress = &progress;
    po.cancel = options.cancel;
    po.backing = backing.get();
    po.unread_backing = writer->backing().has_value() && !options.read_backing;
    po.io_fence = {[&outputs] { return outputs.io_ticket(); }, [&outputs](std::uint64_t t) { return outputs.wait_io(t); }};
    po.sparse_size = options.sparse_size;
    po.only = only;
    // A remote source: its data ranges fetched ahead, several requests at once (see prefetch.hpp).
    BlockDevice *read_from = &source;
    std::unique_ptr<pipeline::PrefetchingDevice> prefetch;
    if (options.requests_in_flight > 1) {
        HSDK_TRY(auto planned, source.block_status(0, source.virtual_size()));
        ChangedExtents plan;
        for (const auto &e : planned)
            if (e.kind == ExtentKind::data) plan.add(e.offset, e.length);
        if (only != nullptr) plan = plan.intersected(*only);
        prefetch = std::make_unique<pipeline::PrefetchingDevice>(source, plan, options.requests_in_flight);
        read_from = prefetch.get();
    }
    HSDK_TRY(auto stats, pipeline::run_pipeline(*read_from, *writer, po));
    if (prefetch)
        log(LogLevel::debug, fmt::format("convert: reads of the source ahead of the conversion: up to {} in flight (window {})",
                                         prefetch->peak_in_flight(), prefetch->window()));
    HSDK_TRYV(options.cancel.check());
    HSDK_TRYV(writer->finish());
    writer.reset();
    HSDK_TRYV(outputs.commit());
    progress.finish_phase();

    ConvertStats out;
    out.virtual_size = source.virtual_size();
    out.bytes_read = stats.bytes_read;
    out.bytes_written = stats.bytes_written;
    if (outputs.in_place_length()) {
        out.output_size = *outputs.in_place_length();  // a device's size is not the image's
    } else if (auto final_image = format::open_layer(destination, std::string(driver->name), OpenOptions{})) {
        for (const auto &f : final_image.value()->info().files) {
            struct stat st {};
            if (::stat(f.c_str(), &st) == 0) out.output_size += static_cast<std::uint64_t>(st.st_size);
        }
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log(LogLevel::info, fmt::format("convert: read {} bytes, wrote {} bytes of data; '{}' holds {} bytes; {:.3f} s", out.bytes_read,
                                    out.bytes_written, destination, out.output_size, out.seconds));
    return out;
}

Result<ConvertStats> convert(const std::string &source, const OpenOptions &source_options, const std::string &destination,
                             const ConvertOptions &options) {
    HSDK_TRY(auto image, open_image(source, source_options));
    if (options.requests_in_flight == 0 && is_remote_location(source)) {
        ConvertOptions remote = options;
        remote.requests_in_flight = default_remote_requests;
        return convert(*image, destination, remote);
    }
    return convert(*image, destination, options);
}

}  // namespace hypersdk
