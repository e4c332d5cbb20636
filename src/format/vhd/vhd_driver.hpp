// Entry points of the VHD driver, shared by its files (format/vhd/).
#pragma once

#include "format/layer.hpp"

namespace hypersdk::format::vhd {

Result<std::unique_ptr<Layer>> open_vhd(OpenRequest request);
Result<std::unique_ptr<DiskWriter>> create_vhd(const CreateRequest &request);

}  // namespace hypersdk::format::vhd
