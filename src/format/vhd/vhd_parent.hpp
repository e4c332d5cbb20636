// Where a differencing VHD's parent is: the parent locators and the parent's name, decoded into a
// path this system can follow (through io::resolve_reference, which polices it).
#pragma once

#include "format/vhd/vhd_format.hpp"

#include <hypersdk/error.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hypersdk::format::vhd {

// Locator data larger than this is not a path (Windows' longest path is 32767 UTF-16 units).
inline constexpr std::uint32_t max_locator_bytes = 64 * 1024;

// UTF-16 to UTF-8, stopping at the first NUL unit. Unpaired surrogates become U+FFFD.
std::string utf16_to_utf8(std::span<const std::byte> bytes, bool big_endian);

// Turns locator text into a POSIX path: backslashes become '/', a leading "./" is dropped, a drive
// letter ("C:/x") is dropped leaving an absolute path ("/x"), a file URL ("file://localhost/x",
// "file:///x") becomes its percent-decoded path.
std::string windows_path_to_posix(std::string_view path);
std::optional<std::string> file_url_to_path(std::string_view url);

struct DecodedLocator {
    FourCC platform{};
    std::string text;  // as written (decoded to UTF-8), empty when the platform is not a path
    std::string path;  // POSIX form, empty when unusable
};

struct ParentChoice {
    std::string path;    // what to follow, relative to the child's folder unless absolute
    std::string source;  // "W2ru locator", "W2ku locator", "MacX locator", "parent name"
};

// Decodes one locator's data according to its platform code ('W2ru', 'W2ku': UTF-16LE; 'MacX':
// UTF-8 file URL; others are kept as unusable).
DecodedLocator decode_locator(const FourCC &platform, std::span<const std::byte> data);

// Prefers the relative Windows locator, then the absolute ones, then the parent's name.
std::optional<ParentChoice> choose_parent(const std::vector<DecodedLocator> &locators, const std::string &parent_name);

}  // namespace hypersdk::format::vhd
