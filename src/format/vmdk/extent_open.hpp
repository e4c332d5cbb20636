// Opening each kind of extent from its file.
#pragma once

#include "format/vmdk/extent.hpp"
#include "format/vmdk/sparse_header.hpp"

#include <memory>
#include <string>

namespace hypersdk::format::vmdk {

// Raw data at `start_sector` of the file (FLAT, VMFS). `format` is the descriptor's type name.
std::unique_ptr<ExtentReader> make_flat_extent(std::shared_ptr<ExtentFile> file, std::uint64_t start_sector, std::string format);
// Sectors that read as zeros (ZERO extents).
std::unique_ptr<ExtentReader> make_zero_extent(std::uint64_t bytes);

struct HostedSparse {
    std::unique_ptr<ExtentReader> reader;
    SparseHeader header;  // the effective header (the footer's, for a streamOptimized stream)
};
// A hosted sparse extent (KDMV, version 1..3): monolithicSparse, twoGbMaxExtentSparse pieces and
// streamOptimized streams. `format` is the descriptor's type name ("" for a monolithic file).
Result<HostedSparse> open_hosted_sparse(std::shared_ptr<ExtentFile> file, std::string format);
// An ESX sparse extent (COWD, vmfsSparse redo logs).
Result<std::unique_ptr<ExtentReader>> open_cowd_extent(std::shared_ptr<ExtentFile> file, std::string format);
// A space-efficient sparse extent (seSparse).
Result<std::unique_ptr<ExtentReader>> open_sesparse_extent(std::shared_ptr<ExtentFile> file, std::string format);

}  // namespace hypersdk::format::vmdk
