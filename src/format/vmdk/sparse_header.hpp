// On-disk structures of VMDK sparse extents: the hosted sparse header ("KDMV", also the footer of a
// streamOptimized extent), stream markers, the ESX COWD header and the seSparse headers.
// All fields little-endian; sector = 512 bytes.
#pragma once

#include <hypersdk/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace hypersdk::format::vmdk {

inline constexpr std::uint64_t sector_size = 512;

// ---- hosted sparse extent (KDMV) ---------------------------------------------------------------
inline constexpr std::array<std::byte, 4> kdmv_magic{std::byte{'K'}, std::byte{'D'}, std::byte{'M'}, std::byte{'V'}};
inline constexpr std::uint32_t flag_newline_detect = 1u << 0;
inline constexpr std::uint32_t flag_redundant_gt = 1u << 1;
inline constexpr std::uint32_t flag_zeroed_grain_gte = 1u << 2;
inline constexpr std::uint32_t flag_compressed = 1u << 16;
inline constexpr std::uint32_t flag_markers = 1u << 17;
inline constexpr std::uint16_t compression_none = 0;
inline constexpr std::uint16_t compression_deflate = 1;
inline constexpr std::uint64_t gd_at_end = 0xffffffffffffffffULL;
inline constexpr std::uint32_t gte_zeroed = 1;  // grain table entry meaning "reads as zeros" (flag_zeroed_grain_gte)
inline constexpr std::uint32_t hosted_gtes_per_gt = 512;
// Sectors of one hosted grain table (512 four-byte entries).
inline constexpr std::uint64_t hosted_table_sectors = hosted_gtes_per_gt * 4 / sector_size;

inline constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t a) noexcept { return (v + a - 1) / a * a; }

struct SparseHeader {
    std::uint32_t version = 1;
    std::uint32_t flags = 0;
    std::uint64_t capacity = 0;           // sectors
    std::uint64_t grain_size = 0;         // sectors
    std::uint64_t descriptor_offset = 0;  // sectors
    std::uint64_t descriptor_size = 0;    // sectors
    std::uint32_t gtes_per_gt = hosted_gtes_per_gt;
    std::uint64_t rgd_offset = 0;  // sectors
    std::uint64_t gd_offset = 0;   // sectors, or gd_at_end
    std::uint64_t overhead = 0;    // sectors of metadata before the first grain
    std::uint8_t unclean_shutdown = 0;
    std::array<std::uint8_t, 4> newline_check{'\n', ' ', '\r', '\n'};
    std::uint16_t compress_algorithm = compression_none;

    [[nodiscard]] bool compressed() const noexcept { return compress_algorithm == compression_deflate; }
    [[nodiscard]] bool has_markers() const noexcept { return (flags & flag_markers) != 0; }
    [[nodiscard]] bool newline_check_intact() const noexcept {
        return newline_check == std::array<std::uint8_t, 4>{'\n', ' ', '\r', '\n'};
    }
};

// True when the first bytes carry the KDMV signature.
bool has_kdmv_magic(std::span<const std::byte> head) noexcept;
// Decodes a 512-byte header sector (magic not checked: callers do, to word their errors).
SparseHeader parse_sparse_header(std::span<const std::byte, 512> sector) noexcept;
// Encodes a header into a 512-byte sector, magic included, padding zeroed.
void encode_sparse_header(const SparseHeader &h, std::span<std::byte, 512> sector) noexcept;

// ---- stream markers (streamOptimized) ------------------------------------------------------------
// A marker sector: {u64 value, u32 size, u32 type}. size > 0: a grain marker (value = LBA of the grain,
// size = compressed bytes that follow the 12-byte marker head). size == 0: a metadata marker whose
// `value` counts the sectors of metadata that follow the marker sector.
enum class MarkerType : std::uint32_t { end_of_stream = 0, grain_table = 1, grain_directory = 2, footer = 3 };
inline constexpr std::size_t grain_marker_head = 12;

struct Marker {
    std::uint64_t value = 0;
    std::uint32_t size = 0;
    std::uint32_t type = 0;  // meaningful when size == 0
};
Marker parse_marker(std::span<const std::byte> bytes) noexcept;  // needs >= 16 bytes
void encode_metadata_marker(std::span<std::byte, 512> sector, MarkerType type, std::uint64_t sectors) noexcept;

// ---- ESX sparse extent (COWD, "vmfsSparse") --------------------------------------------------------
inline constexpr std::array<std::byte, 4> cowd_magic{std::byte{'C'}, std::byte{'O'}, std::byte{'W'}, std::byte{'D'}};
inline constexpr std::uint32_t cowd_gtes_per_gt = 4096;
inline constexpr std::size_t cowd_header_size = 2048;

struct CowdHeader {
    std::uint32_t version = 1;
    std::uint32_t flags = 0;
    std::uint32_t capacity = 0;     // sectors
    std::uint32_t grain_size = 0;   // sectors
    std::uint32_t gd_offset = 0;    // sectors
    std::uint32_t gd_entries = 0;   // number of grain directory entries
    std::uint32_t next_free = 0;    // sectors
};
bool has_cowd_magic(std::span<const std::byte> head) noexcept;
CowdHeader parse_cowd_header(std::span<const std::byte> bytes) noexcept;  // needs >= 32 bytes

// ---- space-efficient sparse extent (seSparse, VMFS 6 snapshots) ------------------------------------
inline constexpr std::uint64_t sesparse_const_magic = 0x00000000cafebabeULL;
inline constexpr std::uint64_t sesparse_volatile_magic = 0x00000000cafecafeULL;
inline constexpr std::uint64_t sesparse_version = 0x0000000200000001ULL;
inline constexpr std::uint64_t sesparse_grain_sectors = 8;         // the only grain size in use: 4 KiB
inline constexpr std::uint64_t sesparse_table_sectors = 64;        // 32 KiB tables of 4096 u64 entries
inline constexpr std::uint32_t sesparse_gtes_per_gt = 4096;

struct SeSparseConstHeader {
    std::uint64_t magic = 0, version = 0, capacity = 0, grain_size = 0, grain_table_size = 0, flags = 0;
    std::array<std::uint64_t, 4> reserved{};
    std::uint64_t volatile_header_offset = 0, volatile_header_size = 0;
    std::uint64_t journal_header_offset = 0, journal_header_size = 0;
    std::uint64_t journal_offset = 0, journal_size = 0;
    std::uint64_t grain_dir_offset = 0, grain_dir_size = 0;
    std::uint64_t grain_tables_offset = 0, grain_tables_size = 0;
    std::uint64_t free_bitmap_offset = 0, free_bitmap_size = 0;
    std::uint64_t backmap_offset = 0, backmap_size = 0;
    std::uint64_t grains_offset = 0, grains_size = 0;
    bool padding_zero = true;
};
struct SeSparseVolatileHeader {
    std::uint64_t magic = 0, free_gt_number = 0, next_txn_seq_number = 0, replay_journal = 0;
    bool padding_zero = true;
};
SeSparseConstHeader parse_sesparse_const_header(std::span<const std::byte, 512> sector) noexcept;
SeSparseVolatileHeader parse_sesparse_volatile_header(std::span<const std::byte, 512> sector) noexcept;

}  // namespace hypersdk::format::vmdk
