#include "format/vhdx/guid.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace hypersdk::format::vhdx {

Guid Guid::read(const std::byte *p) noexcept {
    Guid g;
    std::memcpy(g.bytes.data(), p, 16);
    return g;
}

void Guid::write(std::byte *p) const noexcept { std::memcpy(p, bytes.data(), 16); }

Guid Guid::random() {
    thread_local std::mt19937_64 engine{[] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }()};
    Guid g;
    for (std::size_t i = 0; i < 16; i += 8) {
        const std::uint64_t v = engine();
        std::memcpy(g.bytes.data() + i, &v, 8);
    }
    // Version 4 (Data3's top nibble) and the RFC 4122 variant (Data4[0] top bits 10).
    g.bytes[7] = (g.bytes[7] & std::byte{0x0F}) | std::byte{0x40};
    g.bytes[8] = (g.bytes[8] & std::byte{0x3F}) | std::byte{0x80};
    return g;
}

bool Guid::is_zero() const noexcept {
    return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::string Guid::to_string() const {
    const std::byte *p = bytes.data();
    return fmt::format("{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", le32(p, 0), le16(p, 4),
                       le16(p, 6), std::to_integer<unsigned>(p[8]), std::to_integer<unsigned>(p[9]),
                       std::to_integer<unsigned>(p[10]), std::to_integer<unsigned>(p[11]),
                       std::to_integer<unsigned>(p[12]), std::to_integer<unsigned>(p[13]),
                       std::to_integer<unsigned>(p[14]), std::to_integer<unsigned>(p[15]));
}

namespace {
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
}  // namespace

std::optional<Guid> Guid::parse(std::string_view text) {
    if (text.size() == 38 && text.front() == '{' && text.back() == '}') text = text.substr(1, 36);
    if (text.size() != 36) return std::nullopt;
    // Hex digits in text order: 8-4-4-4-12, i.e. 16 bytes as printed.
    std::array<std::uint8_t, 16> printed{};
    std::size_t out = 0;
    for (std::size_t i = 0; i < text.size();) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-') return std::nullopt;
            ++i;
            continue;
        }
        const int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        printed[out++] = static_cast<std::uint8_t>(hi * 16 + lo);
        i += 2;
    }
    const std::uint32_t d1 = (std::uint32_t{printed[0]} << 24) | (std::uint32_t{printed[1]} << 16) |
                             (std::uint32_t{printed[2]} << 8) | printed[3];
    const auto d2 = static_cast<std::uint16_t>((printed[4] << 8) | printed[5]);
    const auto d3 = static_cast<std::uint16_t>((printed[6] << 8) | printed[7]);
    std::array<std::uint8_t, 8> d4{};
    std::copy(printed.begin() + 8, printed.end(), d4.begin());
    return from_fields(d1, d2, d3, d4);
}

}  // namespace hypersdk::format::vhdx
