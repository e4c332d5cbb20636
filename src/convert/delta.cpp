// write_delta: a qcow2 overlay holding only the changed extents, on the previous link.
#include <hypersdk/cbt.hpp>

#include "convert/convert_device.hpp"

#include <fmt/format.h>

#include <chrono>

namespace hypersdk {

Result<DeltaStats> write_delta(BlockDevice &source, const ChangedExtents &changed, const std::string &destination,
                               const DeltaOptions &options) {
    const auto started = std::chrono::steady_clock::now();
    if (options.backing_file.empty()) return fail(Errc::invalid_argument, "a delta needs a backing file (the previous link of its chain)");
    if (options.backing_format.empty()) return fail(Errc::invalid_argument, "a delta needs its backing file's format");
    if (!changed.empty() && changed.runs().back().end() > source.virtual_size())
        return fail(Errc::invalid_argument, fmt::format("changed extents reach byte {} of a {}-byte disk", changed.runs().back().end(),
                                                        source.virtual_size()));
    ConvertOptions co;
    co.output_format = "qcow2";
    co.format_options = options.format_options;
    co.format_options.emplace_back("backing_file", options.backing_file);
    co.format_options.emplace_back("backing_fmt", options.backing_format);
    co.threads = options.threads;
    co.overwrite = options.overwrite;
    co.read_backing = options.read_backing;
    co.progress = options.progress;
    co.cancel = options.cancel;
    HSDK_TRY(auto stats, detail::convert_device(source, destination, co, &changed));
    DeltaStats out;
    out.virtual_size = stats.virtual_size;
    out.changed_bytes = changed.bytes();
    out.bytes_read = stats.bytes_read;
    out.bytes_written = stats.bytes_written;
    out.output_size = stats.output_size;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
}

}  // namespace hypersdk
