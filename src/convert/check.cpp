// check_image(): the format driver's own metadata consistency check, on the image file alone.
#include <hypersdk/convert.hpp>

#include "format/layer.hpp"

namespace hypersdk {

void CheckReport::add_note(std::string message) {
    if (messages.size() < max_messages) messages.push_back(std::move(message));
    else if (messages.size() == max_messages) messages.push_back("further problems not listed");
}

void CheckReport::add_error(std::string message) {
    ++errors;
    add_note(std::move(message));
}

void CheckReport::add_leak(std::string message) {
    ++leaks;
    add_note(std::move(message));
}

Result<CheckReport> check_image(const std::string &path, const OpenOptions &options) {
    HSDK_TRY(auto layer, format::open_layer(path, options.format == "vpc" ? "vhd" : options.format, options));
    HSDK_TRY(auto report, layer->check());
    if (report.format.empty()) report.format = layer->info().format;
    report.clean = report.errors == 0 && report.leaks == 0;
    return report;
}

}  // namespace hypersdk
