// GUIDs as VHDX stores them: Data1 (32-bit), Data2 and Data3 (16-bit) little-endian, Data4 as 8 bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::format::vhdx {

struct Guid {
    std::array<std::byte, 16> bytes{};  // on-disk order

    static constexpr Guid from_fields(std::uint32_t d1, std::uint16_t d2, std::uint16_t d3,
                                      std::array<std::uint8_t, 8> d4) noexcept {
        Guid g;
        for (int i = 0; i < 4; ++i) g.bytes[static_cast<std::size_t>(i)] = static_cast<std::byte>((d1 >> (8 * i)) & 0xFF);
        g.bytes[4] = static_cast<std::byte>(d2 & 0xFF);
        g.bytes[5] = static_cast<std::byte>(d2 >> 8);
        g.bytes[6] = static_cast<std::byte>(d3 & 0xFF);
        g.bytes[7] = static_cast<std::byte>(d3 >> 8);
        for (std::size_t i = 0; i < 8; ++i) g.bytes[8 + i] = static_cast<std::byte>(d4[i]);
        return g;
    }
    static Guid read(const std::byte *p) noexcept;
    void write(std::byte *p) const noexcept;
    // A fresh random (version 4) GUID.
    static Guid random();
    // Accepts "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", optionally in braces, any case.
    static std::optional<Guid> parse(std::string_view text);

    [[nodiscard]] bool is_zero() const noexcept;
    // Lower-case canonical text without braces.
    [[nodiscard]] std::string to_string() const;

    friend bool operator==(const Guid &, const Guid &) = default;
};

}  // namespace hypersdk::format::vhdx
