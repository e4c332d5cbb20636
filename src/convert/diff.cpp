// diff_images: the local diff. The disk is cut into chunks that workers compare in parallel; a
// chunk both images leave unallocated (or zero) reads as zeros in both and is skipped unread.
#include <hypersdk/cbt.hpp>

#include "core/executor.hpp"

#include <fmt/format.h>

#include <cstring>
#include <mutex>
#include <optional>

namespace hypersdk {
namespace {

constexpr std::uint64_t chunk_bytes = 8u << 20;

// The parts of [offset, offset + length) where the device may hold nonzero bytes.
Result<ChangedExtents> maybe_data(BlockDevice &dev, std::uint64_t offset, std::uint64_t length) {
    ChangedExtents out;
    HSDK_TRY(auto map, dev.block_status(offset, length));
    for (const auto &e : map)
        if (e.kind == ExtentKind::data) out.add(e.offset, e.length);
    return out;
}

}  // namespace

Result<ChangedExtents> diff_images(BlockDevice &base, BlockDevice &next, const DiffOptions &options) {
    const std::uint64_t size = base.virtual_size();
    if (next.virtual_size() != size)
        return fail(Errc::invalid_argument, fmt::format("the images differ in size ({} and {} bytes): a delta needs the size of its base",
                                                        size, next.virtual_size()));
    const std::uint64_t block = options.block_size;
    if (block == 0 || block % 512 != 0 || block > chunk_bytes)
        return fail(Errc::invalid_argument, fmt::format("block size {} is not a multiple of 512 up to {}", block, chunk_bytes));

    ProgressReporter progress(options.progress, options.cancel);
    progress.begin_phase("comparing", size);
    const std::size_t chunks = static_cast<std::size_t>((size + chunk_bytes - 1) / chunk_bytes);
    std::vector<ChangedExtents> found(chunks);
    std::mutex m;
    std::optional<Error> first_error;
    auto work = [&](std::size_t i) {
        auto compare_chunk = [&]() -> Result<void> {
            HSDK_TRYV(options.cancel.check());
            const std::uint64_t begin = i * chunk_bytes, len = std::min(chunk_bytes, size - begin);
            HSDK_TRY(auto a, maybe_data(base, begin, len));
            HSDK_TRY(auto b, maybe_data(next, begin, len));
            // Blocks where either image may hold data; elsewhere both read zeros.
            const ChangedExtents candidates = a.united(b).aligned(block, begin + len);
            std::vector<std::byte> ba, bb;
            for (const auto &r : candidates.runs()) {
                for (std::uint64_t pos = r.offset; pos < r.end();) {
                    const std::uint64_t n = std::min<std::uint64_t>(r.end() - pos, 1u << 20);
                    ba.resize(n);
                    bb.resize(n);
                    HSDK_TRYV(base.read(pos, ba));
                    HSDK_TRYV(next.read(pos, bb));
                    for (std::uint64_t off = 0; off < n; off += block) {
                        const std::uint64_t k = std::min(block, n - off);
                        if (std::memcmp(ba.data() + off, bb.data() + off, k) != 0) found[i].add(pos + off, k);
                    }
                    pos += n;
                }
            }
            progress.advance(len);
            return success();
        };
        {
            std::lock_guard lock(m);
            if (first_error) return;
        }
        if (auto r = compare_chunk(); !r) {
            std::lock_guard lock(m);
            if (!first_error) first_error = r.error();
        }
    };
    core::run_parallel(chunks, core::worker_parallelism(options.threads), work);
    if (first_error) return fail(*first_error);
    HSDK_TRYV(options.cancel.check());
    progress.finish_phase();
    ChangedExtents out;
    for (const auto &c : found)
        for (const auto &r : c.runs()) out.add(r.offset, r.length);
    return out;
}

}  // namespace hypersdk
