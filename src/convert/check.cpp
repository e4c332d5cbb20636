// check_image(): the format driver's own metadata consistency check, on the image file alone.
#include <hypersdk/convert.hpp>

#include "format/layer.hpp"

namespace hypersdk {

Result<CheckReport> check_image(const std::string &path, const OpenOptions &options) {
    const std::string format = options.format == "vpc" ? "vhd" : options.format;
    auto opened = format::open_layer(path, format, options);
    if (!opened && opened.error().code == Errc::corrupt_image) {
        // Metadata too broken to open (a table running past the end of a truncated file, say) is a
        // finding of the check, not a failure of it: one corruption, with the reason. Only for a
        // file that carries the format's signature: a file of another format is no corrupt image.
        auto probed = probe_format(path, options.http);
        if (probed && (format.empty() || probed.value() == format)) {
            CheckReport report;
            report.format = probed.value();
            report.add_corruption(opened.error().message);
            report.clean = false;
            return report;
        }
    }
    HSDK_TRY(auto layer, std::move(opened));
    HSDK_TRY(auto report, layer->check());
    if (report.format.empty()) report.format = layer->info().format;
    report.clean = report.corruptions == 0 && report.leaks == 0 && report.check_errors == 0;
    return report;
}

}  // namespace hypersdk
