// Entry points of the VDI driver, shared by its files (format/vdi/).
#pragma once

#include "format/layer.hpp"

namespace hypersdk::format::vdi {

Result<std::unique_ptr<Layer>> open_vdi(OpenRequest request);
Result<std::unique_ptr<DiskWriter>> create_vdi(const CreateRequest &request);

}  // namespace hypersdk::format::vdi
