// Writing committed data into a block-mapped file (VDI, VHD, VHDX): the data is cut at block
// boundaries, each piece goes where the block map puts it, and pieces that land next to each other
// in the file go out as one write - consecutive blocks usually sit side by side, and a few large
// direct writes keep the disk busier than many block-sized ones.
#pragma once

#include "io/file.hpp"

#include <hypersdk/error.hpp>

#include <algorithm>
#include <cstdint>
#include <span>

namespace hypersdk::format {

// `locate(block)` returns the file offset of the block's first data byte, allocating the block if
// needed: Result<std::uint64_t>(std::uint64_t block).
template <class Locate>
Result<void> write_through_block_map(io::File &file, std::uint64_t offset, std::span<const std::byte> data, std::uint64_t block_size,
                                     Locate &&locate) {
    std::uint64_t pending_at = 0;
    std::size_t pending_from = 0, pending_length = 0;
    for (std::size_t done = 0; done < data.size();) {
        const std::uint64_t pos = offset + done;
        const std::uint64_t in_block = pos % block_size;
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size() - done, block_size - in_block));
        HSDK_TRY(const std::uint64_t block_at, locate(pos / block_size));
        const std::uint64_t at = block_at + in_block;
        if (pending_length > 0 && pending_at + pending_length == at) {
            pending_length += n;
        } else {
            if (pending_length > 0) HSDK_TRYV(file.write_behind(pending_at, data.subspan(pending_from, pending_length)));
            pending_at = at;
            pending_from = done;
            pending_length = n;
        }
        done += n;
    }
    if (pending_length > 0) HSDK_TRYV(file.write_behind(pending_at, data.subspan(pending_from, pending_length)));
    return success();
}

}  // namespace hypersdk::format
