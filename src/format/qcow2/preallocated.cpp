// Layout, in host clusters:
//   0                      header (v3, 16-bit refcounts, no extensions)
//   1 ..                   refcount table, then refcount blocks counting every cluster of the file
//   then                   L1 table, then every L2 table
//   data_offset ..         one cluster per guest cluster, in guest order (holes until written)
// Every entry carries QCOW_OFLAG_COPIED: each cluster is referenced exactly once.
#include "format/qcow2/preallocated.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace hypersdk::format::qcow2 {
namespace {

constexpr std::uint64_t prealloc_copied = 1ULL << 63;
constexpr std::uint64_t prealloc_offset_mask = 0x00fffffffffffe00ULL;
constexpr std::uint32_t prealloc_refcount_order = 4;  // 16-bit
constexpr std::uint32_t prealloc_header_length = 104;
constexpr std::size_t prealloc_chunk_bytes = 4u << 20;  // metadata is written in pieces of this size

std::uint64_t prealloc_div_up(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

struct PreallocPlan {
    std::uint64_t cs = 0, data_clusters = 0, l1_entries = 0, l1_clusters = 0, rt_clusters = 0, rb_clusters = 0;
    std::uint64_t rt_offset = 0, rb_offset = 0, l1_offset = 0, l2_offset = 0, data_offset = 0, total_clusters = 0;
};

PreallocPlan prealloc_plan_for(std::uint64_t size, std::uint32_t bits) {
    PreallocPlan p;
    p.cs = 1ULL << bits;
    p.data_clusters = prealloc_div_up(size, p.cs);
    const std::uint64_t l2_entries = p.cs / 8;
    p.l1_entries = std::max<std::uint64_t>(1, prealloc_div_up(p.data_clusters, l2_entries));
    p.l1_clusters = prealloc_div_up(p.l1_entries * 8, p.cs);
    const std::uint64_t per_block = (p.cs * 8) >> prealloc_refcount_order;
    // The refcount blocks count themselves and the table: a fixed point, reached in a few steps.
    p.rb_clusters = 1;
    p.rt_clusters = 1;
    for (;;) {
        const std::uint64_t total = 1 + p.rt_clusters + p.rb_clusters + p.l1_clusters + p.l1_entries + p.data_clusters;
        const std::uint64_t rb = prealloc_div_up(total, per_block), rt = prealloc_div_up(rb * 8, p.cs);
        if (rb == p.rb_clusters && rt == p.rt_clusters) {
            p.total_clusters = total;
            break;
        }
        p.rb_clusters = rb;
        p.rt_clusters = rt;
    }
    p.rt_offset = p.cs;
    p.rb_offset = p.rt_offset + p.rt_clusters * p.cs;
    p.l1_offset = p.rb_offset + p.rb_clusters * p.cs;
    p.l2_offset = p.l1_offset + p.l1_clusters * p.cs;
    p.data_offset = p.l2_offset + p.l1_entries * p.cs;
    return p;
}

// Writes `count` big-endian 64-bit entries produced by value(i), from `offset` on, in chunks.
template <class F>
Result<void> write_entries64(io::File &file, std::uint64_t offset, std::uint64_t count, F value) {
    std::vector<std::byte> buf;
    for (std::uint64_t i = 0; i < count;) {
        const std::uint64_t n = std::min<std::uint64_t>(count - i, prealloc_chunk_bytes / 8);
        buf.assign(static_cast<std::size_t>(n * 8), std::byte{0});
        for (std::uint64_t k = 0; k < n; ++k) store_be<std::uint64_t>(buf.data() + k * 8, value(i + k));
        HSDK_TRYV(file.write_all(offset + i * 8, buf));
        i += n;
    }
    return success();
}

}  // namespace

Result<PreallocatedLayout> create_preallocated(io::File &file, std::uint64_t virtual_size, std::uint32_t cluster_bits) {
    if (cluster_bits < 12 || cluster_bits > 21) return fail(Errc::invalid_argument, "qcow2 cluster size must be 4 KiB to 2 MiB");
    virtual_size = prealloc_div_up(virtual_size, 512) * 512;
    const PreallocPlan p = prealloc_plan_for(virtual_size, cluster_bits);

    std::vector<std::byte> header(static_cast<std::size_t>(p.cs), std::byte{0});
    auto *h = header.data();
    store_be<std::uint32_t>(h + 0, 0x514649fb);  // "QFI\xfb"
    store_be<std::uint32_t>(h + 4, 3);
    store_be<std::uint32_t>(h + 20, cluster_bits);
    store_be<std::uint64_t>(h + 24, virtual_size);
    store_be<std::uint32_t>(h + 36, static_cast<std::uint32_t>(p.l1_entries));
    store_be<std::uint64_t>(h + 40, p.l1_offset);
    store_be<std::uint64_t>(h + 48, p.rt_offset);
    store_be<std::uint32_t>(h + 56, static_cast<std::uint32_t>(p.rt_clusters));
    store_be<std::uint32_t>(h + 96, prealloc_refcount_order);
    store_be<std::uint32_t>(h + 100, prealloc_header_length);
    // The header extension area ends at once (type 0, length 0): eight zero bytes at 104.
    HSDK_TRYV(file.write_all(0, header));

    HSDK_TRYV(write_entries64(file, p.rt_offset, p.rb_clusters, [&](std::uint64_t i) { return p.rb_offset + i * p.cs; }));
    {
        // 16-bit refcounts of 1 for clusters 0 .. total-1, zero after.
        std::vector<std::byte> buf;
        const std::uint64_t entries = p.rb_clusters * (p.cs / 2);
        for (std::uint64_t i = 0; i < entries;) {
            const std::uint64_t n = std::min<std::uint64_t>(entries - i, prealloc_chunk_bytes / 2);
            buf.assign(static_cast<std::size_t>(n * 2), std::byte{0});
            for (std::uint64_t k = 0; k < n && i + k < p.total_clusters; ++k) store_be<std::uint16_t>(buf.data() + k * 2, 1);
            HSDK_TRYV(file.write_all(p.rb_offset + i * 2, buf));
            i += n;
        }
    }
    HSDK_TRYV(write_entries64(file, p.l1_offset, p.l1_entries, [&](std::uint64_t i) { return (p.l2_offset + i * p.cs) | prealloc_copied; }));
    const std::uint64_t l2_entries = p.l1_entries * (p.cs / 8);
    HSDK_TRYV(write_entries64(file, p.l2_offset, l2_entries, [&](std::uint64_t i) {
        return i < p.data_clusters ? (p.data_offset + i * p.cs) | prealloc_copied : std::uint64_t{0};
    }));
    PreallocatedLayout out{cluster_bits, virtual_size, p.data_offset, p.data_offset + p.data_clusters * p.cs};
    HSDK_TRYV(file.truncate(out.file_size));
    return out;
}

Result<PreallocatedLayout> open_preallocated(const io::File &file) {
    std::byte h[prealloc_header_length];
    HSDK_TRYV(file.read_exact(0, h));
    auto bad = [&](const char *what) {
        return fail(Errc::corrupt_image, fmt::format("{} is not a warm migration target (a metadata-preallocated qcow2): {}", file.path(), what));
    };
    if (be32(h, 0) != 0x514649fb || be32(h, 4) != 3) return bad("no qcow2 v3 header");
    const std::uint32_t bits = be32(h, 20);
    if (bits < 12 || bits > 21) return bad("cluster size out of range");
    const std::uint64_t size = be64(h, 24);
    const PreallocPlan p = prealloc_plan_for(size, bits);
    if (be64(h, 8) != 0 || be64(h, 40) != p.l1_offset || be64(h, 48) != p.rt_offset ||
        be32(h, 36) != p.l1_entries || be32(h, 60) != 0 || be64(h, 72) != 0)
        return bad("its tables are not where this layout puts them");
    auto l2_entry = [&](std::uint64_t i) -> Result<std::uint64_t> {
        std::byte e[8];
        HSDK_TRYV(file.read_exact(p.l2_offset + i * 8, e));
        return be64(e, 0);
    };
    for (std::uint64_t i : {std::uint64_t{0}, p.data_clusters - 1}) {
        HSDK_TRY(auto e, l2_entry(i));
        if ((e & prealloc_offset_mask) != p.data_offset + i * p.cs || (e & prealloc_copied) == 0) return bad("a cluster is not mapped in place");
    }
    HSDK_TRY(auto file_size, file.size());
    PreallocatedLayout out{bits, size, p.data_offset, p.data_offset + p.data_clusters * p.cs};
    if (file_size < out.file_size) return bad("the file is shorter than its data area");
    return out;
}

}  // namespace hypersdk::format::qcow2
