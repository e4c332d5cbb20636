#include "format/vmdk/sparse_header.hpp"

#include "core/endian.hpp"
#include "core/zero.hpp"

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vmdk {

bool has_kdmv_magic(std::span<const std::byte> head) noexcept {
    return head.size() >= 4 && std::equal(kdmv_magic.begin(), kdmv_magic.end(), head.begin());
}

bool has_cowd_magic(std::span<const std::byte> head) noexcept {
    return head.size() >= 4 && std::equal(cowd_magic.begin(), cowd_magic.end(), head.begin());
}

// Field offsets of the 512-byte hosted sparse header.
namespace off {
constexpr std::size_t version = 4, flags = 8, capacity = 12, grain_size = 20, descriptor_offset = 28,
                      descriptor_size = 36, gtes_per_gt = 44, rgd_offset = 48, gd_offset = 56, overhead = 64,
                      unclean = 72, newline = 73, compress = 77;
}

SparseHeader parse_sparse_header(std::span<const std::byte, 512> s) noexcept {
    const std::byte *p = s.data();
    SparseHeader h;
    h.version = le32(p, off::version);
    h.flags = le32(p, off::flags);
    h.capacity = le64(p, off::capacity);
    h.grain_size = le64(p, off::grain_size);
    h.descriptor_offset = le64(p, off::descriptor_offset);
    h.descriptor_size = le64(p, off::descriptor_size);
    h.gtes_per_gt = le32(p, off::gtes_per_gt);
    h.rgd_offset = le64(p, off::rgd_offset);
    h.gd_offset = le64(p, off::gd_offset);
    h.overhead = le64(p, off::overhead);
    h.unclean_shutdown = static_cast<std::uint8_t>(p[off::unclean]);
    for (std::size_t i = 0; i < 4; ++i) h.newline_check[i] = static_cast<std::uint8_t>(p[off::newline + i]);
    h.compress_algorithm = le16(p, off::compress);
    return h;
}

void encode_sparse_header(const SparseHeader &h, std::span<std::byte, 512> s) noexcept {
    std::memset(s.data(), 0, s.size());
    std::byte *p = s.data();
    std::memcpy(p, kdmv_magic.data(), 4);
    store_le(p + off::version, h.version);
    store_le(p + off::flags, h.flags);
    store_le(p + off::capacity, h.capacity);
    store_le(p + off::grain_size, h.grain_size);
    store_le(p + off::descriptor_offset, h.descriptor_offset);
    store_le(p + off::descriptor_size, h.descriptor_size);
    store_le(p + off::gtes_per_gt, h.gtes_per_gt);
    store_le(p + off::rgd_offset, h.rgd_offset);
    store_le(p + off::gd_offset, h.gd_offset);
    store_le(p + off::overhead, h.overhead);
    p[off::unclean] = std::byte{h.unclean_shutdown};
    for (std::size_t i = 0; i < 4; ++i) p[off::newline + i] = std::byte{h.newline_check[i]};
    store_le(p + off::compress, h.compress_algorithm);
}

Marker parse_marker(std::span<const std::byte> b) noexcept {
    Marker m;
    m.value = le64(b.data(), 0);
    m.size = le32(b.data(), 8);
    m.type = le32(b.data(), 12);
    return m;
}

void encode_metadata_marker(std::span<std::byte, 512> s, MarkerType type, std::uint64_t sectors) noexcept {
    std::memset(s.data(), 0, s.size());
    store_le(s.data(), sectors);
    store_le(s.data() + 8, std::uint32_t{0});
    store_le(s.data() + 12, static_cast<std::uint32_t>(type));
}

CowdHeader parse_cowd_header(std::span<const std::byte> b) noexcept {
    const std::byte *p = b.data();
    CowdHeader h;
    h.version = le32(p, 4);
    h.flags = le32(p, 8);
    h.capacity = le32(p, 12);
    h.grain_size = le32(p, 16);
    h.gd_offset = le32(p, 20);
    h.gd_entries = le32(p, 24);
    h.next_free = le32(p, 28);
    return h;
}

SeSparseConstHeader parse_sesparse_const_header(std::span<const std::byte, 512> s) noexcept {
    const std::byte *p = s.data();
    SeSparseConstHeader h;
    std::size_t o = 0;
    auto next = [&] {
        const std::uint64_t v = le64(p, o);
        o += 8;
        return v;
    };
    h.magic = next();
    h.version = next();
    h.capacity = next();
    h.grain_size = next();
    h.grain_table_size = next();
    h.flags = next();
    for (auto &r : h.reserved) r = next();
    h.volatile_header_offset = next();
    h.volatile_header_size = next();
    h.journal_header_offset = next();
    h.journal_header_size = next();
    h.journal_offset = next();
    h.journal_size = next();
    h.grain_dir_offset = next();
    h.grain_dir_size = next();
    h.grain_tables_offset = next();
    h.grain_tables_size = next();
    h.free_bitmap_offset = next();
    h.free_bitmap_size = next();
    h.backmap_offset = next();
    h.backmap_size = next();
    h.grains_offset = next();
    h.grains_size = next();
    h.padding_zero = is_all_zero(s.subspan(o));
    return h;
}

SeSparseVolatileHeader parse_sesparse_volatile_header(std::span<const std::byte, 512> s) noexcept {
    const std::byte *p = s.data();
    SeSparseVolatileHeader h;
    h.magic = le64(p, 0);
    h.free_gt_number = le64(p, 8);
    h.next_txn_seq_number = le64(p, 16);
    h.replay_journal = le64(p, 24);
    h.padding_zero = is_all_zero(s.subspan(32));
    return h;
}

}  // namespace hypersdk::format::vmdk
