// Sanity limits applied to every VMDK structure read from a file: they keep hostile headers from
// causing overflow, giant allocations or endless loops.
#pragma once

#include <cstdint>
#include <optional>

namespace hypersdk::format::vmdk {

// Largest virtual disk we accept (1 PiB; VMware's own limit is 62 TiB).
inline constexpr std::uint64_t max_disk_bytes = 1ULL << 50;
// Largest grain (qemu refuses more than 1 GiB; real images use 4 KiB .. 1 MiB).
inline constexpr std::uint64_t max_grain_bytes = 16ULL << 20;
// Largest grain directory held in memory.
inline constexpr std::uint64_t max_directory_bytes = 256ULL << 20;

// Sectors to bytes, or nullopt when the result would exceed max_disk_bytes * 4 (far past any file).
inline std::optional<std::uint64_t> sectors_to_bytes(std::uint64_t sectors) noexcept {
    if (sectors > (max_disk_bytes << 2) / 512) return std::nullopt;
    return sectors * 512;
}

inline bool is_power_of_two(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

// True when [offset, offset + length) lies inside a file of `size` bytes (no overflow).
inline bool inside_file(std::uint64_t offset, std::uint64_t length, std::uint64_t size) noexcept {
    return offset <= size && length <= size - offset;
}

}  // namespace hypersdk::format::vmdk
