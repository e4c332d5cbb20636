// The Parent Locator metadata item of a differencing VHDX ([MS-VHDX] 2.6.2.6): key/value pairs
// naming the parent (parent_linkage, relative_path, absolute_win32_path, ...).
#pragma once

#include "format/vhdx/guid.hpp"

#include <hypersdk/error.hpp>

#include <span>
#include <string>
#include <utility>
#include <vector>

namespace hypersdk::format::vhdx {

struct ParentLocator {
    Guid type;
    std::vector<std::pair<std::string, std::string>> entries;  // in file order, keys unique

    [[nodiscard]] const std::string *find(std::string_view key) const;
};

// Validates and decodes the item: VHDX locator type, every key and value inside the item,
// non-empty, valid UTF-16 without NULs, keys unique.
Result<ParentLocator> parse_parent_locator(std::span<const std::byte> item);

// relative_path as a POSIX relative path ("\" -> "/"), for resolve_reference().
std::string posix_relative_path(std::string_view windows_path);

}  // namespace hypersdk::format::vhdx
