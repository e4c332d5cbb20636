// Digest of a byte range of an open file (OVA members are ranges of the .ova).
#pragma once

#include <hypersdk/hash.hpp>

#include "io/file.hpp"

namespace hypersdk {

Result<std::string> range_digest_hex(const io::File &file, std::uint64_t offset, std::uint64_t length,
                                     DigestAlgorithm algorithm, const CancelToken &cancel = {});

}  // namespace hypersdk
