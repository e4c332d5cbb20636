// Opening images, shared by the Image class and the functions that open images for one call
// (compare).
#pragma once

#include "addon.hpp"

#include <memory>
#include <optional>
#include <string>

namespace hsdk_node {

using ImageHandle = std::shared_ptr<hsdk_image>;

struct OpenOptions {
    std::optional<std::string> format;  // nothing = probe
    bool allow_external_files = false;
    bool open_backing = true;
};

// {format, allowExternalFiles, openBacking} from JavaScript (undefined = defaults).
OpenOptions open_options_from(Napi::Env env, const Napi::Value &value);

// Pool thread: opens an image; on failure returns an empty handle and sets status.
ImageHandle open_image_handle(const std::string &path, const OpenOptions &options, hsdk_status &status);

}  // namespace hsdk_node
