// check_image(): the format driver's own metadata consistency check, on the image file alone.
#include <hypersdk/convert.hpp>

#include "format/layer.hpp"

namespace hypersdk {

Result<CheckReport> check_image(const std::string &path, const OpenOptions &options) {
    HSDK_TRY(auto layer, format::open_layer(path, options.format == "vpc" ? "vhd" : options.format, options));
    HSDK_TRY(auto report, layer->check());
    if (report.format.empty()) report.format = layer->info().format;
    report.clean = report.errors == 0 && report.leaks == 0;
    return report;
}

}  // namespace hypersdk
