// OVF allocation units ("byte * 2^30", "MegaBytes", "hertz * 10^6") and MAC address spelling.
#pragma once

#include <hypersdk/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hypersdk::ovf {

// Bytes per unit for a programmatic unit string (DSP0004 Annex C) or a common name; error when
// the unit is not a byte unit or is out of range.
Result<std::uint64_t> byte_units(std::string_view units, std::string_view what);

// value * units with overflow detection.
Result<std::uint64_t> scaled_bytes(std::string_view value, std::string_view units, std::string_view what);

Result<std::uint64_t> parse_unsigned(std::string_view text, std::string_view what);

// "00:50:56:AB:CD:EF", "005056abcdef", "00-50-56-ab-cd-ef" -> "00:50:56:ab:cd:ef"; nullopt otherwise.
std::optional<std::string> normalize_mac(std::string_view text);

}  // namespace hypersdk::ovf
