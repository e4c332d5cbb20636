// Entry points of the VHDX driver (format/drivers.hpp exposes the Driver itself).
#pragma once

#include "format/layer.hpp"

namespace hypersdk::format::vhdx {

int probe(std::span<const std::byte> head, std::uint64_t file_size);
Result<std::unique_ptr<Layer>> open(OpenRequest request);
Result<std::unique_ptr<DiskWriter>> create(const CreateRequest &request);

}  // namespace hypersdk::format::vhdx
