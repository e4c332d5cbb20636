// convert(): open the writer, run the pipeline, finish, publish atomically.
#include <hypersdk/convert.hpp>

#include "convert/pipeline.hpp"
#include "format/layer.hpp"
#include "format/reference.hpp"
#include "io/atomic_output.hpp"

#include <fmt/format.h>

#include <chrono>
#include <sys/stat.h>

namespace hypersdk {
namespace {

// The destination must not be any file the source reads from.
Result<void> refuse_overwriting_source(BlockDevice &source, const std::string &destination) {
    auto *image = dynamic_cast<Image *>(&source);
    if (image == nullptr) return success();
    struct stat dst {};
    if (::stat(destination.c_str(), &dst) != 0) return success();
    for (const auto &info : image->chain_info()) {
        for (const auto &f : info.files) {
            struct stat st {};
            if (::stat(f.c_str(), &st) == 0 && st.st_dev == dst.st_dev && st.st_ino == dst.st_ino)
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
    const auto started = std::chrono::steady_clock::now();
    if (options.output_format.empty()) return fail(Errc::invalid_argument, "no output format given");
    const auto *driver = format::find_driver(options.output_format);
    if (driver == nullptr) return fail(Errc::invalid_argument, fmt::format("unknown output format '{}'", options.output_format));
    if (driver->create == nullptr)
        return fail(Errc::unsupported, fmt::format("unsupported: writing format '{}' is not supported", driver->name));
    HSDK_TRYV(refuse_overwriting_source(source, destination));

    io::AtomicOutputSet outputs;
    outputs.set_direct_writes(options.direct_io);
    outputs.set_flush(options.flush);
    format::CreateRequest request{destination, source.virtual_size(), options.format_options, options.compress, &outputs};
    // A conflict means an existing destination and overwrite == false.
    if (!options.overwrite) {
        struct stat st {};
        if (::stat(destination.c_str(), &st) == 0)
            return fail(Errc::conflict, fmt::format("output '{}' already exists", destination));
    }
    HSDK_TRY(auto writer, driver->create(request));

    std::unique_ptr<Image> backing;
    if (auto ref = writer->backing()) {
        // The caller named this backing file, so it may live anywhere they chose.
        HSDK_TRY(auto path, format::resolve_reference(destination, ref->path, /*allow_external=*/true, "backing file"));
        OpenOptions bo;
        bo.format = ref->format;
        bo.allow_external_files = false;
        auto opened = open_image(path, bo);
        if (!opened) return fail(opened.error().with_context("cannot open the output's backing file"));
        backing = std::move(opened).value();
    }

    ProgressReporter progress(options.progress, options.cancel);
    progress.begin_phase("converting", 0);
    pipeline::PipelineOptions po;
    po.threads = options.threads;
    po.progress = &progress;
    po.cancel = options.cancel;
    po.backing = backing.get();
    po.io_fence = {[&outputs] { return outputs.io_ticket(); }, [&outputs](std::uint64_t t) { return outputs.wait_io(t); }};
    HSDK_TRY(auto stats, pipeline::run_pipeline(source, *writer, po));
    HSDK_TRYV(options.cancel.check());
    HSDK_TRYV(writer->finish());
    writer.reset();
    HSDK_TRYV(outputs.commit());
    progress.finish_phase();

    ConvertStats out;
    out.virtual_size = source.virtual_size();
    out.bytes_read = stats.bytes_read;
    out.bytes_written = stats.bytes_written;
    auto final_image = format::open_layer(destination, std::string(driver->name), OpenOptions{});
    if (final_image) {
        for (const auto &f : final_image.value()->info().files) {
            struct stat st {};
            if (::stat(f.c_str(), &st) == 0) out.output_size += static_cast<std::uint64_t>(st.st_size);
        }
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
}

Result<ConvertStats> convert(const std::string &source, const OpenOptions &source_options, const std::string &destination,
                             const ConvertOptions &options) {
    HSDK_TRY(auto image, open_image(source, source_options));
    return convert(*image, destination, options);
}

}  // namespace hypersdk
