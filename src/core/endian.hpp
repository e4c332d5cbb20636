// Loading and storing fixed-width integers of a given byte order from raw bytes.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace hypersdk {

template <class T>
constexpr T byteswap_if(T v, bool swap) noexcept {
    if (!swap) return v;
    if constexpr (sizeof(T) == 1) return v;
    else if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(static_cast<std::uint16_t>(v)));
    else if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(static_cast<std::uint32_t>(v)));
    else return static_cast<T>(__builtin_bswap64(static_cast<std::uint64_t>(v)));
}

template <class T>
T load_le(const void *p) noexcept {
    static_assert(std::is_integral_v<T>);
    T v;
    std::memcpy(&v, p, sizeof v);
    return byteswap_if(v, std::endian::native != std::endian::little);
}

template <class T>
T load_be(const void *p) noexcept {
    static_assert(std::is_integral_v<T>);
    T v;
    std::memcpy(&v, p, sizeof v);
    return byteswap_if(v, std::endian::native != std::endian::big);
}

template <class T>
void store_le(void *p, T v) noexcept {
    static_assert(std::is_integral_v<T>);
    v = byteswap_if(v, std::endian::native != std::endian::little);
    std::memcpy(p, &v, sizeof v);
}

template <class T>
void store_be(void *p, T v) noexcept {
    static_assert(std::is_integral_v<T>);
    v = byteswap_if(v, std::endian::native != std::endian::big);
    std::memcpy(p, &v, sizeof v);
}

// Shorthands for parsing headers out of a byte buffer at a byte offset.
inline std::uint16_t le16(const std::byte *base, std::size_t off) noexcept { return load_le<std::uint16_t>(base + off); }
inline std::uint32_t le32(const std::byte *base, std::size_t off) noexcept { return load_le<std::uint32_t>(base + off); }
inline std::uint64_t le64(const std::byte *base, std::size_t off) noexcept { return load_le<std::uint64_t>(base + off); }
inline std::uint16_t be16(const std::byte *base, std::size_t off) noexcept { return load_be<std::uint16_t>(base + off); }
inline std::uint32_t be32(const std::byte *base, std::size_t off) noexcept { return load_be<std::uint32_t>(base + off); }
inline std::uint64_t be64(const std::byte *base, std::size_t off) noexcept { return load_be<std::uint64_t>(base + off); }

}  // namespace hypersdk
