// A local file (or block device) as a ByteSource: positional reads, holes from SEEK_DATA/SEEK_HOLE,
// neighbours resolved inside its folder by io::resolve_reference.
#pragma once

#include <hypersdk/byte_source.hpp>

#include <memory>
#include <string>

namespace hypersdk::io {

Result<std::shared_ptr<ByteSource>> open_file_source(const std::string &path);

}  // namespace hypersdk::io
