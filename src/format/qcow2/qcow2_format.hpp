// qcow2 on-disk layout: constants, the parsed header, and decoding of table entries.
// Facts from qemu's docs/interop/qcow2.rst; every number here is big-endian on disk.
#pragma once

#include <hypersdk/error.hpp>

#include "io/file.hpp"
#include "io/source.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hypersdk::format::qcow2 {

inline constexpr std::uint32_t header_magic = 0x514649fb;  // "QFI\xfb"
inline constexpr std::uint32_t v2_header_length = 72;
inline constexpr std::uint32_t v3_min_header_length = 104;
inline constexpr std::uint32_t v3_header_length_with_compression = 112;

// Feature bits.
inline constexpr std::uint64_t incompat_dirty = 1ULL << 0;
inline constexpr std::uint64_t incompat_corrupt = 1ULL << 1;
inline constexpr std::uint64_t incompat_data_file = 1ULL << 2;
inline constexpr std::uint64_t incompat_compression = 1ULL << 3;
inline constexpr std::uint64_t incompat_extended_l2 = 1ULL << 4;
inline constexpr std::uint64_t incompat_known = 0x1f;
inline constexpr std::uint64_t compat_lazy_refcounts = 1ULL << 0;
inline constexpr std::uint64_t autoclear_bitmaps = 1ULL << 0;
inline constexpr std::uint64_t autoclear_data_file_raw = 1ULL << 1;

// Header extension types.
inline constexpr std::uint32_t ext_end = 0;
inline constexpr std::uint32_t ext_backing_format = 0xe2792aca;
inline constexpr std::uint32_t ext_feature_table = 0x6803f857;
inline constexpr std::uint32_t ext_bitmaps = 0x23852875;
inline constexpr std::uint32_t ext_crypto_header = 0x0537be77;
inline constexpr std::uint32_t ext_data_file = 0x44415441;

// Table entries.
inline constexpr std::uint64_t entry_offset_mask = 0x00fffffffffffe00ULL;  // L1 entries, standard L2 entries
inline constexpr std::uint64_t refcount_table_offset_mask = 0xfffffffffffffe00ULL;
inline constexpr std::uint64_t oflag_copied = 1ULL << 63;
inline constexpr std::uint64_t oflag_compressed = 1ULL << 62;
inline constexpr std::uint64_t oflag_zero = 1ULL << 0;

// Limits (qemu's, so that we open what qemu opens and refuse what it refuses).
inline constexpr std::uint32_t min_cluster_bits = 9;
inline constexpr std::uint32_t max_cluster_bits = 21;  // 2 MiB
inline constexpr std::uint64_t max_l1_bytes = 32ULL << 20;
inline constexpr std::uint64_t max_refcount_table_bytes = 8ULL << 20;
inline constexpr std::uint32_t max_snapshots = 65536;
inline constexpr std::uint32_t max_snapshot_extra_data = 1024;
inline constexpr std::uint64_t max_snapshot_table_bytes = 1024ULL * max_snapshots;
inline constexpr std::uint32_t max_bitmaps = 65535;
inline constexpr std::uint64_t max_bitmap_directory_bytes = 64ULL << 20;
inline constexpr std::size_t max_backing_name = 1023;
inline constexpr std::size_t max_string_extension = 1023;
inline constexpr unsigned subclusters_per_cluster = 32;

enum class CompressionType : std::uint8_t { deflate = 0, zstd = 1 };

struct Bitmaps {
    std::uint32_t count = 0;
    std::uint64_t directory_size = 0;
    std::uint64_t directory_offset = 0;
};

struct FeatureName {
    std::uint8_t type = 0;  // 0 incompatible, 1 compatible, 2 autoclear
    std::uint8_t bit = 0;
    std::string name;
};

struct Header {
    std::uint32_t version = 0;
    std::uint64_t backing_file_offset = 0;
    std::uint32_t backing_file_size = 0;
    std::uint32_t cluster_bits = 0;
    std::uint64_t size = 0;
    std::uint32_t crypt_method = 0;
    std::uint32_t l1_size = 0;
    std::uint64_t l1_table_offset = 0;
    std::uint64_t refcount_table_offset = 0;
    std::uint32_t refcount_table_clusters = 0;
    std::uint32_t nb_snapshots = 0;
    std::uint64_t snapshots_offset = 0;
    std::uint64_t incompatible = 0;
    std::uint64_t compatible = 0;
    std::uint64_t autoclear = 0;
    std::uint32_t refcount_order = 4;
    std::uint32_t header_length = v2_header_length;
    CompressionType compression = CompressionType::deflate;

    // From the header extensions and the rest of the header cluster.
    std::string backing_file;
    std::string backing_format;
    std::string data_file;
    std::optional<Bitmaps> bitmaps;  // only when the extension is present and marked consistent
    std::vector<FeatureName> feature_names;

    // Derived.
    [[nodiscard]] std::uint64_t cluster_size() const noexcept { return 1ULL << cluster_bits; }
    [[nodiscard]] bool extended_l2() const noexcept { return (incompatible & incompat_extended_l2) != 0; }
    [[nodiscard]] bool has_data_file() const noexcept { return (incompatible & incompat_data_file) != 0; }
    [[nodiscard]] bool data_file_raw() const noexcept { return (autoclear & autoclear_data_file_raw) != 0; }
    // Bytes of one L2 entry and entries per L2 table.
    [[nodiscard]] std::uint64_t l2_entry_bytes() const noexcept { return extended_l2() ? 16 : 8; }
    [[nodiscard]] std::uint32_t l2_bits() const noexcept { return cluster_bits - (extended_l2() ? 4 : 3); }
    [[nodiscard]] std::uint64_t l2_entries() const noexcept { return 1ULL << l2_bits(); }
    [[nodiscard]] std::uint64_t subcluster_size() const noexcept {
        return extended_l2() ? cluster_size() / subclusters_per_cluster : cluster_size();
    }
    // Compressed cluster descriptor split (x = 62 - (cluster_bits - 8)).
    [[nodiscard]] unsigned csize_shift() const noexcept { return 62 - (cluster_bits - 8); }
    [[nodiscard]] std::uint64_t csize_mask() const noexcept { return (1ULL << (cluster_bits - 8)) - 1; }
    [[nodiscard]] std::uint64_t compressed_offset_mask() const noexcept { return (1ULL << csize_shift()) - 1; }
    [[nodiscard]] std::uint64_t refcount_block_entries() const noexcept {
        return (cluster_size() * 8) >> refcount_order;
    }
    [[nodiscard]] std::uint64_t refcount_table_entries() const noexcept {
        return static_cast<std::uint64_t>(refcount_table_clusters) * cluster_size() / 8;
    }
};

// Reads and validates the header, its extensions and the backing file name. `file_size` bounds
// every table the header points at.
Result<Header> read_header(const io::Source &file, std::uint64_t file_size);

// Name of an incompatible/compatible/autoclear feature bit for messages ("bit 5" when unknown).
std::string feature_bit_name(const Header &h, std::uint8_t type, unsigned bit);

struct Snapshot {
    std::string id;
    std::string name;
    std::uint64_t l1_table_offset = 0;
    std::uint32_t l1_size = 0;
    std::uint32_t date_sec = 0;
    std::uint32_t date_nsec = 0;
    std::uint64_t vm_clock_nsec = 0;
    std::uint64_t vm_state_size = 0;
    std::optional<std::uint64_t> disk_size;
    std::optional<std::int64_t> icount;
};

struct SnapshotTable {
    std::vector<Snapshot> snapshots;
    std::uint64_t byte_size = 0;  // bytes the table occupies in the file
};

Result<SnapshotTable> read_snapshot_table(const io::Source &file, std::uint64_t file_size, const Header &h);

struct BitmapInfo {
    std::string name;
    std::uint64_t table_offset = 0;
    std::uint32_t table_size = 0;  // entries
    std::uint32_t flags = 0;
    std::uint8_t granularity_bits = 0;
};

// The bitmap directory named by the bitmaps extension (empty when there is none).
Result<std::vector<BitmapInfo>> read_bitmap_directory(const io::Source &file, std::uint64_t file_size, const Header &h);

// What one guest cluster (or subcluster) maps to.
enum class ClusterKind : std::uint8_t { unallocated, zero, normal, compressed };

struct CompressedRef {
    std::uint64_t offset = 0;  // first byte of the compressed stream in the image file
    std::uint64_t size = 0;    // bytes from offset to the end of its last sector
};

inline CompressedRef decode_compressed(const Header &h, std::uint64_t entry) noexcept {
    CompressedRef c;
    c.offset = entry & h.compressed_offset_mask();
    const std::uint64_t sectors = ((entry >> h.csize_shift()) & h.csize_mask()) + 1;
    c.size = sectors * 512 - (c.offset & 511);
    return c;
}

// Kind of a standard (64-bit) L2 entry, ignoring subclusters.
inline ClusterKind classify_entry(const Header &h, std::uint64_t entry) noexcept {
    if (entry & oflag_compressed) return ClusterKind::compressed;
    if (!h.extended_l2() && (entry & oflag_zero)) return ClusterKind::zero;
    if ((entry & entry_offset_mask) != 0) return ClusterKind::normal;
    // Offset 0 is a real cluster only in an external data file, marked by the copied flag.
    if (h.has_data_file() && (entry & oflag_copied)) return ClusterKind::normal;
    return ClusterKind::unallocated;
}

}  // namespace hypersdk::format::qcow2
