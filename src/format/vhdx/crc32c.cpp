#include "format/vhdx/crc32c.hpp"

#include <isa-l/crc.h>

#include <algorithm>
#include <array>
#include <climits>

namespace hypersdk::format::vhdx {

// ISA-L's crc32_iscsi() neither inverts its input nor its output: seeding it with 0xFFFFFFFF and
// inverting the result gives standard CRC-32C, and the raw value chains from call to call.
void Crc32c::update(std::span<const std::byte> data) noexcept {
    auto *p = reinterpret_cast<unsigned char *>(const_cast<std::byte *>(data.data()));
    std::size_t left = data.size();
    while (left > 0) {
        const std::size_t n = std::min<std::size_t>(left, static_cast<std::size_t>(INT_MAX) & ~std::size_t{4095});
        state_ = crc32_iscsi(p, static_cast<int>(n), state_);
        p += n;
        left -= n;
    }
}

void Crc32c::update_zeros(std::size_t n) noexcept {
    static const std::array<std::byte, 4096> zeros{};
    while (n > 0) {
        const std::size_t k = std::min(n, zeros.size());
        update(std::span<const std::byte>(zeros.data(), k));
        n -= k;
    }
}

std::uint32_t crc32c(std::span<const std::byte> data) noexcept {
    Crc32c c;
    c.update(data);
    return c.value();
}

std::uint32_t crc32c_with_zeroed_field(std::span<const std::byte> data, std::size_t field_offset) noexcept {
    Crc32c c;
    c.update(data.first(field_offset));
    c.update_zeros(4);
    c.update(data.subspan(field_offset + 4));
    return c.value();
}

}  // namespace hypersdk::format::vhdx
