// Fast all-zero test for buffers (the conversion pipeline's zero detection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace hypersdk {

inline bool is_all_zero(std::span<const std::byte> buf) noexcept {
    const std::byte *p = buf.data();
    std::size_t n = buf.size();
    // Check a 16-byte head by words, then compare the buffer with itself shifted: memcmp is
    // vectorised by libc and needs no zero page.
    std::size_t head = n < 16 ? n : 16;
    for (std::size_t i = 0; i < head; ++i)
        if (p[i] != std::byte{0}) return false;
    if (n <= 16) return true;
    return std::memcmp(p, p + 16, n - 16) == 0;
}

}  // namespace hypersdk
