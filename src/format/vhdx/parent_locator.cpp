#include "format/vhdx/parent_locator.hpp"

#include "core/endian.hpp"
#include "format/vhdx/constants.hpp"
#include "format/vhdx/utf16.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::format::vhdx {

const std::string *ParentLocator::find(std::string_view key) const {
    for (const auto &[k, v] : entries)
        if (k == key) return &v;
    return nullptr;
}

Result<ParentLocator> parse_parent_locator(std::span<const std::byte> item) {
    constexpr std::size_t header = 20, entry_size = 12;
    if (item.size() < header) return fail_corrupt(fmt::format("parent locator is {} bytes, too short", item.size()));
    ParentLocator pl;
    pl.type = Guid::read(item.data());
    if (pl.type != vhdx_parent_locator_type)
        return fail_unsupported(fmt::format("parent locator type {} (only VHDX parents, {}, are known)", pl.type.to_string(),
                                            vhdx_parent_locator_type.to_string()));
    const std::uint16_t count = le16(item.data(), 18);
    if (std::size_t{count} * entry_size > item.size() - header)
        return fail_corrupt(fmt::format("parent locator lists {} entries but holds room for {}", count,
                                        (item.size() - header) / entry_size));
    for (std::uint16_t i = 0; i < count; ++i) {
        const std::byte *e = item.data() + header + std::size_t{i} * entry_size;
        const std::uint32_t key_offset = le32(e, 0), value_offset = le32(e, 4);
        const std::uint16_t key_length = le16(e, 8), value_length = le16(e, 10);
        auto text = [&](std::uint32_t offset, std::uint16_t length, const char *what) -> Result<std::string> {
            if (length == 0) return fail_corrupt(fmt::format("parent locator entry {} has an empty {}", i, what));
            if (offset > item.size() || length > item.size() - offset)
                return fail_corrupt(fmt::format("parent locator entry {}: {} ({:#x}+{}) lies beyond the item ({} bytes)", i,
                                                what, offset, length, item.size()));
            auto s = utf16le_to_utf8(item.subspan(offset, length));
            if (!s) return fail_corrupt(fmt::format("parent locator entry {}: {} is not valid UTF-16 text", i, what));
            return *s;
        };
        HSDK_TRY(auto key, text(key_offset, key_length, "key"));
        HSDK_TRY(auto value, text(value_offset, value_length, "value"));
        if (pl.find(key) != nullptr) return fail_corrupt(fmt::format("parent locator lists key '{}' twice", key));
        pl.entries.emplace_back(std::move(key), std::move(value));
    }
    return pl;
}

std::string posix_relative_path(std::string_view windows_path) {
    std::string p(windows_path);
    std::replace(p.begin(), p.end(), '\\', '/');
    return p;
}

}  // namespace hypersdk::format::vhdx
