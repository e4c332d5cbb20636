// Refining a layer's allocation map by the holes of its file: bytes a format says are stored but
// that sit in a hole of a sparse file are zeros, and the conversion pipeline need not read them.
#pragma once

#include "format/layer.hpp"

namespace hypersdk::format {

// Appends the data extent `e` (with a host offset into `file`) to `out`, its parts that lie in
// holes of the file (as its byte source knows them) turned into zero extents. Sources that know no holes give
// the extent unchanged.
Result<void> append_split_by_host_holes(const io::Source &file, const Extent &e, std::vector<Extent> &out);

}  // namespace hypersdk::format
