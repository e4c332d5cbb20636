// compare(): content equality of two block devices, qemu-img compare semantics.
#include <hypersdk/convert.hpp>

#include "core/zero.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace hypersdk {
namespace {

constexpr std::uint64_t window = 4ULL << 20;

bool any_data(const std::vector<Extent> &runs) {
    return std::any_of(runs.begin(), runs.end(), [](const Extent &e) { return e.kind == ExtentKind::data; });
}

std::uint64_t first_mismatch(const std::byte *a, const std::byte *b, std::size_t n) {
    std::size_t lo = 0;
    // Narrow down by blocks, then bytes.
    while (lo + 4096 <= n && std::memcmp(a + lo, b + lo, 4096) == 0) lo += 4096;
    while (lo < n && a[lo] == b[lo]) ++lo;
    return lo;
}

std::uint64_t first_nonzero(const std::byte *p, std::size_t n) {
    std::size_t i = 0;
    while (i + 4096 <= n && is_all_zero({p + i, 4096})) i += 4096;
    while (i < n && p[i] == std::byte{0}) ++i;
    return i;
}

// The part of `dev` past `from` must read as zeros.
Result<std::optional<std::uint64_t>> nonzero_tail(BlockDevice &dev, std::uint64_t from, const CompareOptions &options) {
    std::vector<std::byte> buf;
    for (std::uint64_t pos = from; pos < dev.virtual_size(); pos += window) {
        HSDK_TRYV(options.cancel.check());
        const std::uint64_t n = std::min(window, dev.virtual_size() - pos);
        HSDK_TRY(auto runs, dev.block_status(pos, n));
        if (!any_data(runs)) continue;
        buf.resize(static_cast<std::size_t>(n));
        HSDK_TRYV(dev.read(pos, buf));
        const auto i = first_nonzero(buf.data(), buf.size());
        if (i < buf.size()) return std::optional<std::uint64_t>(pos + i);
    }
    return std::optional<std::uint64_t>();
}

}  // namespace

Result<CompareResult> compare(BlockDevice &a, BlockDevice &b, const CompareOptions &options) {
    CompareResult result;
    const std::uint64_t common = std::min(a.virtual_size(), b.virtual_size());
    if (options.strict && a.virtual_size() != b.virtual_size()) {
        result.first_difference = common;
        result.reason = fmt::format("image sizes differ ({} and {} bytes)", a.virtual_size(), b.virtual_size());
        return result;
    }
    ProgressReporter progress(options.progress, options.cancel);
    progress.begin_phase("comparing", std::max(a.virtual_size(), b.virtual_size()));
    std::vector<std::byte> ba, bb;
    for (std::uint64_t pos = 0; pos < common; pos += window) {
        HSDK_TRYV(options.cancel.check());
        const std::uint64_t n = std::min(window, common - pos);
        HSDK_TRY(auto ra, a.block_status(pos, n));
        HSDK_TRY(auto rb, b.block_status(pos, n));
        if (options.strict) {
            // Allocation must match too (qemu-img compare -s): present in some layer, or not.
            auto allocated_at = [](const std::vector<Extent> &runs, std::uint64_t off) {
                for (const auto &e : runs)
                    if (off >= e.offset && off < e.end()) return e.kind != ExtentKind::hole;
                return false;
            };
            std::vector<std::uint64_t> edges;
            for (const auto &e : ra) edges.push_back(e.offset);
            for (const auto &e : rb) edges.push_back(e.offset);
            std::sort(edges.begin(), edges.end());
            for (auto off : edges)
                if (allocated_at(ra, off) != allocated_at(rb, off)) {
                    result.first_difference = off;
                    result.reason = "allocation differs";
                    return result;
                }
        }
        if (any_data(ra) || any_data(rb)) {
            ba.resize(static_cast<std::size_t>(n));
            bb.resize(static_cast<std::size_t>(n));
            HSDK_TRYV(a.read(pos, ba));
            HSDK_TRYV(b.read(pos, bb));
            if (std::memcmp(ba.data(), bb.data(), ba.size()) != 0) {
                result.first_difference = pos + first_mismatch(ba.data(), bb.data(), ba.size());
                result.reason = "content differs";
                return result;
            }
        }
        progress.advance(n);
    }
    BlockDevice &larger = a.virtual_size() > b.virtual_size() ? a : b;
    HSDK_TRY(auto tail, nonzero_tail(larger, common, options));
    if (tail) {
        result.first_difference = *tail;
        result.reason = "content differs (the larger image has data past the end of the smaller)";
        return result;
    }
    progress.finish_phase();
    result.identical = true;
    return result;
}

}  // namespace hypersdk
