// The conversion behind convert() and write_delta(): with `only`, the pipeline plans just those
// ranges and leaves the rest of the output to its backing file.
#pragma once

#include <hypersdk/cbt.hpp>
#include <hypersdk/convert.hpp>

namespace hypersdk::detail {

Result<ConvertStats> convert_device(BlockDevice &source, const std::string &destination, const ConvertOptions &options,
                                    const ChangedExtents *only);

}  // namespace hypersdk::detail
