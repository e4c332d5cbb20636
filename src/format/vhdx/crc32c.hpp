// CRC-32C (Castagnoli), the checksum of VHDX headers, region tables and log entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace hypersdk::format::vhdx {

// Incremental CRC-32C with the usual conventions (initial value and final xor 0xFFFFFFFF), so
// crc32c("123456789") == 0xE3069283.
class Crc32c {
public:
    void update(std::span<const std::byte> data) noexcept;
    // Feeds `n` zero bytes (the checksum field while it is being computed).
    void update_zeros(std::size_t n) noexcept;
    [[nodiscard]] std::uint32_t value() const noexcept { return state_ ^ 0xFFFFFFFFu; }

private:
    std::uint32_t state_ = 0xFFFFFFFFu;
};

std::uint32_t crc32c(std::span<const std::byte> data) noexcept;

// The VHDX way: the CRC of `data` with its 4-byte checksum field at `field_offset` taken as zero.
std::uint32_t crc32c_with_zeroed_field(std::span<const std::byte> data, std::size_t field_offset) noexcept;

}  // namespace hypersdk::format::vhdx
