// Entry points of the qcow2 driver, defined in this folder and tied together in driver.cpp.
#pragma once

#include "format/layer.hpp"

namespace hypersdk::format::qcow2 {

int probe(std::span<const std::byte> head, std::uint64_t file_size);
Result<std::unique_ptr<Layer>> open(OpenRequest request);
Result<std::unique_ptr<DiskWriter>> create(const CreateRequest &request);

}  // namespace hypersdk::format::qcow2
