// A qcow2 image whose every guest cluster is mapped up front (qemu-img's preallocation=metadata):
// the data clusters lie in guest order after the metadata, in a sparse file, so any guest range
// can be written in place, at any time and in any order, with one pwrite, and a never-written
// cluster reads as zeros from the hole beneath it. Warm migrations update their targets this way
// between precopy rounds.
#pragma once

#include "io/file.hpp"

#include <hypersdk/error.hpp>

#include <cstdint>

namespace hypersdk::format::qcow2 {

struct PreallocatedLayout {
    std::uint32_t cluster_bits = 16;
    std::uint64_t virtual_size = 0;
    std::uint64_t data_offset = 0;  // host offset of guest offset 0
    std::uint64_t file_size = 0;
};

// Writes header, refcounts, L1 and L2 tables into an empty file and sizes it (sparse).
Result<PreallocatedLayout> create_preallocated(io::File &file, std::uint64_t virtual_size, std::uint32_t cluster_bits = 16);

// Checks that `file` is such an image (header, and the first and last L2 entries map linearly)
// and returns its layout.
Result<PreallocatedLayout> open_preallocated(const io::File &file);

}  // namespace hypersdk::format::qcow2
