// Parsing and validating the qcow2 header, its extensions and the backing file name.
#include "format/qcow2/qcow2_format.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::format::qcow2 {
namespace {

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

std::string read_string(const std::vector<std::byte> &buf, std::size_t off, std::size_t len) {
    return std::string(reinterpret_cast<const char *>(buf.data() + off), len);
}

// A table of `bytes` at `offset` must be cluster aligned and lie inside the file.
Result<void> check_table(const Header &h, std::uint64_t file_size, std::string_view what, std::uint64_t offset,
                         std::uint64_t bytes) {
    if (offset & (h.cluster_size() - 1))
        return fail_corrupt(fmt::format("{} is not aligned to a cluster (offset {})", what, hex(offset)));
    if (offset > file_size || bytes > file_size - offset)
        return fail_corrupt(fmt::format("{} beyond end of file (offset {}, {} bytes, file is {} bytes)", what, hex(offset),
                                        bytes, file_size));
    return success();
}

Result<void> parse_feature_table(Header &h, const std::vector<std::byte> &buf, std::size_t off, std::size_t len) {
    constexpr std::size_t entry = 48;
    for (std::size_t i = 0; i + entry <= len; i += entry) {
        FeatureName f;
        f.type = static_cast<std::uint8_t>(buf[off + i]);
        f.bit = static_cast<std::uint8_t>(buf[off + i + 1]);
        std::string name = read_string(buf, off + i + 2, entry - 2);
        name.resize(std::min(name.find('\0'), name.size()));
        f.name = std::move(name);
        h.feature_names.push_back(std::move(f));
    }
    return success();
}

// Walks the extensions from `start` up to `end` (the backing file name or the end of the cluster).
Result<void> parse_extensions(Header &h, const std::vector<std::byte> &buf, std::size_t start, std::size_t end) {
    bool seen_backing_format = false, seen_data_file = false, seen_features = false, seen_bitmaps = false;
    std::size_t off = start;
    while (off + 8 <= end) {
        const std::uint32_t type = be32(buf.data(), off);
        const std::uint32_t len = be32(buf.data(), off + 4);
        if (type == ext_end) return success();
        const std::size_t data = off + 8;
        if (len > end - data)
            return fail_corrupt(fmt::format("header extension {:#010x} at offset {} is {} bytes long, past the end of "
                                            "the header area ({} bytes)",
                                            type, hex(off), len, end));
        auto duplicate = [&](bool &seen, std::string_view what) -> Result<void> {
            if (seen) return fail_corrupt(fmt::format("header has two {} extensions", what));
            seen = true;
            return success();
        };
        switch (type) {
        case ext_backing_format:
            HSDK_TRYV(duplicate(seen_backing_format, "backing format"));
            if (len > max_string_extension)
                return fail_corrupt(fmt::format("backing format name is {} bytes long", len));
            h.backing_format = read_string(buf, data, len);
            break;
        case ext_data_file:
            HSDK_TRYV(duplicate(seen_data_file, "external data file"));
            if (len > max_string_extension)
                return fail_corrupt(fmt::format("external data file name is {} bytes long", len));
            h.data_file = read_string(buf, data, len);
            break;
        case ext_feature_table:
            HSDK_TRYV(duplicate(seen_features, "feature name table"));
            HSDK_TRYV(parse_feature_table(h, buf, data, len));
            break;
        case ext_bitmaps: {
            HSDK_TRYV(duplicate(seen_bitmaps, "bitmaps"));
            if (len != 24) return fail_corrupt(fmt::format("bitmaps header extension is {} bytes long, expected 24", len));
            // Bitmaps a program without bitmap support touched are stale; qemu then ignores them too.
            if (!(h.autoclear & autoclear_bitmaps)) break;
            Bitmaps b;
            b.count = be32(buf.data(), data);
            b.directory_size = be64(buf.data(), data + 8);
            b.directory_offset = be64(buf.data(), data + 16);
            if (b.count == 0 || b.count > max_bitmaps)
                return fail_corrupt(fmt::format("bitmaps extension names {} bitmaps (1..{} allowed)", b.count, max_bitmaps));
            if (b.directory_size == 0 || b.directory_size > max_bitmap_directory_bytes)
                return fail_corrupt(fmt::format("bitmap directory is {} bytes", b.directory_size));
            h.bitmaps = b;
            break;
        }
        default:
            break;  // unknown extensions are safe to ignore
        }
        off = data + ((static_cast<std::size_t>(len) + 7) & ~std::size_t{7});
    }
    return success();
}

}  // namespace

std::string feature_bit_name(const Header &h, std::uint8_t type, unsigned bit) {
    for (const auto &f : h.feature_names)
        if (f.type == type && f.bit == bit && !f.name.empty()) return fmt::format("bit {} ({})", bit, f.name);
    return fmt::format("bit {}", bit);
}

Result<Header> read_header(const io::Source &file, std::uint64_t file_size) {
    if (file_size < v2_header_length)
        return fail_corrupt(fmt::format("file is {} bytes, too short for a qcow2 header", file_size));
    std::vector<std::byte> fixed(static_cast<std::size_t>(std::min<std::uint64_t>(file_size, v3_header_length_with_compression)));
    HSDK_TRYV(file.read_exact(0, fixed));
    const std::byte *p = fixed.data();
    if (be32(p, 0) != header_magic) return fail_corrupt("no qcow2 signature (QFI\\xfb) at offset 0");

    Header h;
    h.version = be32(p, 4);
    if (h.version == 1) return fail_unsupported("qcow version 1 images (the original qcow format) are not supported");
    if (h.version != 2 && h.version != 3) return fail_unsupported(fmt::format("qcow2 version {} is not supported", h.version));
    h.backing_file_offset = be64(p, 8);
    h.backing_file_size = be32(p, 16);
    h.cluster_bits = be32(p, 20);
    h.size = be64(p, 24);
    h.crypt_method = be32(p, 32);
    h.l1_size = be32(p, 36);
    h.l1_table_offset = be64(p, 40);
    h.refcount_table_offset = be64(p, 48);
    h.refcount_table_clusters = be32(p, 56);
    h.nb_snapshots = be32(p, 60);
    h.snapshots_offset = be64(p, 64);

    if (h.cluster_bits > max_cluster_bits && h.cluster_bits <= 30)
        return fail_unsupported(fmt::format("cluster size of {} bytes is larger than the 2 MiB qemu supports", 1ULL << h.cluster_bits));
    if (h.cluster_bits < min_cluster_bits || h.cluster_bits > max_cluster_bits)
        return fail_corrupt(fmt::format("cluster_bits {} out of range ({}..{})", h.cluster_bits, min_cluster_bits, max_cluster_bits));
    const std::uint64_t cs = h.cluster_size();

    if (h.version == 3) {
        if (fixed.size() < v3_min_header_length)
            return fail_corrupt(fmt::format("file is {} bytes, too short for a version 3 header", file_size));
        h.incompatible = be64(p, 72);
        h.compatible = be64(p, 80);
        h.autoclear = be64(p, 88);
        h.refcount_order = be32(p, 96);
        h.header_length = be32(p, 100);
        if (h.header_length < v3_min_header_length)
            return fail_corrupt(fmt::format("header_length {} is shorter than the {} bytes of a version 3 header",
                                            h.header_length, v3_min_header_length));
        if (h.header_length > cs)
            return fail_corrupt(fmt::format("header_length {} exceeds the cluster size {}", h.header_length, cs));
        if (h.header_length > 104) {
            if (fixed.size() <= 104) return fail_corrupt("file ends inside the header");
            h.compression = static_cast<CompressionType>(static_cast<std::uint8_t>(p[104]));
        }
        if (h.refcount_order > 6)
            return fail_corrupt(fmt::format("refcount_order {} is larger than 6 (64-bit refcounts)", h.refcount_order));
    }

    // The header cluster: extensions and the backing file name live here.
    std::vector<std::byte> cluster(static_cast<std::size_t>(std::min<std::uint64_t>(file_size, cs)));
    HSDK_TRYV(file.read_exact(0, cluster));
    if (h.backing_file_offset != 0 && h.backing_file_offset > cs)
        return fail_corrupt(fmt::format("backing file name offset {} lies outside the header cluster", hex(h.backing_file_offset)));
    // Version 2 images carry extensions too (a backing format, for one), right after the 72 bytes.
    const std::size_t ext_limit = static_cast<std::size_t>(h.backing_file_offset ? h.backing_file_offset : cs);
    HSDK_TRYV(parse_extensions(h, cluster, h.header_length, std::min(ext_limit, cluster.size())));

    // Features we must understand before reading a single byte.
    if (const std::uint64_t unknown = h.incompatible & ~incompat_known) {
        std::string bits;
        for (unsigned b = 0; b < 64; ++b)
            if (unknown & (1ULL << b)) bits += (bits.empty() ? "" : ", ") + feature_bit_name(h, 0, b);
        return fail_unsupported(fmt::format("qcow2 image uses unknown incompatible features: {}", bits));
    }
    if (h.crypt_method != 0) return fail_unsupported("encrypted qcow2 images are not supported");
    const auto ctype = static_cast<unsigned>(h.compression);
    if (ctype > 1) return fail_unsupported(fmt::format("unknown qcow2 compression type {}", ctype));
    if (ctype != 0 && !(h.incompatible & incompat_compression))
        return fail_corrupt("compression type is zstd but the compression type feature bit is not set");
    if (ctype == 0 && (h.incompatible & incompat_compression))
        return fail_corrupt("compression type feature bit is set but the compression type is deflate");
    if (h.extended_l2() && h.cluster_bits < 14)
        return fail_corrupt(fmt::format("extended L2 entries need clusters of at least 16 KiB, not {} bytes", cs));
    if (h.has_data_file() && h.data_file.empty())
        return fail_unsupported("image uses an external data file but does not name it");
    if (!h.has_data_file()) h.data_file.clear();  // a stray name without the feature bit means nothing
    if (h.data_file_raw() && !h.has_data_file())
        return fail_corrupt("raw external data bit is set without an external data file");

    // Backing file name.
    if (h.backing_file_offset != 0 && h.backing_file_size != 0) {
        if (h.backing_file_size > max_backing_name)
            return fail_corrupt(fmt::format("backing file name is {} bytes long (at most {} allowed)", h.backing_file_size,
                                            max_backing_name));
        if (h.backing_file_offset + h.backing_file_size > cluster.size())
            return fail_corrupt(fmt::format("backing file name at offset {} runs past the header cluster",
                                            hex(h.backing_file_offset)));
        h.backing_file = read_string(cluster, static_cast<std::size_t>(h.backing_file_offset), h.backing_file_size);
        if (h.backing_file.find('\0') != std::string::npos) return fail_corrupt("backing file name contains a NUL byte");
    }

    // Tables: sizes against qemu's limits and the file, before anything is allocated.
    const std::uint64_t l2_coverage = cs << h.l2_bits();  // guest bytes one L1 entry maps
    const std::uint64_t needed_l1 = h.size / l2_coverage + (h.size % l2_coverage != 0);
    if (static_cast<std::uint64_t>(h.l1_size) * 8 > max_l1_bytes)
        return fail_corrupt(fmt::format("L1 table of {} entries is larger than the 32 MiB limit", h.l1_size));
    if (needed_l1 > h.l1_size)
        return fail_corrupt(fmt::format("L1 table of {} entries is too small for a virtual size of {} bytes (needs {})",
                                        h.l1_size, h.size, needed_l1));
    HSDK_TRYV(check_table(h, file_size, "L1 table", h.l1_table_offset, static_cast<std::uint64_t>(h.l1_size) * 8));
    if (h.refcount_table_clusters == 0) return fail_corrupt("image has no refcount table (refcount_table_clusters is 0)");
    const std::uint64_t rt_bytes = static_cast<std::uint64_t>(h.refcount_table_clusters) * cs;
    if (rt_bytes > max_refcount_table_bytes)
        return fail_corrupt(fmt::format("refcount table of {} clusters is larger than the 8 MiB limit", h.refcount_table_clusters));
    HSDK_TRYV(check_table(h, file_size, "refcount table", h.refcount_table_offset, rt_bytes));
    if (h.nb_snapshots > max_snapshots)
        return fail_corrupt(fmt::format("image claims {} snapshots (at most {} allowed)", h.nb_snapshots, max_snapshots));
    if (h.nb_snapshots > 0)
        HSDK_TRYV(check_table(h, file_size, "snapshot table", h.snapshots_offset, static_cast<std::uint64_t>(h.nb_snapshots) * 40));
    if (h.bitmaps) HSDK_TRYV(check_table(h, file_size, "bitmap directory", h.bitmaps->directory_offset, h.bitmaps->directory_size));
    return h;
}

}  // namespace hypersdk::format::qcow2
