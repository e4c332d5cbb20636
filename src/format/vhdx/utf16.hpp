// UTF-16LE <-> UTF-8 for the strings VHDX stores (creator, parent locator keys and values).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::format::vhdx {

// Decodes UTF-16LE. nullopt on an odd length, an unpaired surrogate or (unless stop_at_nul) a NUL.
// With stop_at_nul, decoding ends at the first NUL character.
std::optional<std::string> utf16le_to_utf8(std::span<const std::byte> data, bool stop_at_nul = false);

// Encodes valid UTF-8 as UTF-16LE (invalid sequences become U+FFFD).
std::vector<std::byte> utf8_to_utf16le(std::string_view text);

}  // namespace hypersdk::format::vhdx
