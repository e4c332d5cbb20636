// Rebuilding the grain map of a streamOptimized extent from its markers, for streams whose grain
// directory is missing or unusable (a transfer cut short, a writer that died before the footer).
#pragma once

#include "format/vmdk/extent.hpp"
#include "format/vmdk/sparse_header.hpp"

#include <string>
#include <utility>
#include <vector>

namespace hypersdk::format::vmdk {

struct ScannedStream {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> grains;  // grain index -> marker offset, sorted
    std::vector<std::string> findings;                             // truncation and similar damage
};

// Walks grain and metadata markers from the first grain to the end-of-stream marker.
Result<ScannedStream> scan_stream_markers(const ExtentFile &file, const SparseHeader &header);

}  // namespace hypersdk::format::vmdk
