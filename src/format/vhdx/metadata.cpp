#include "format/vhdx/metadata.hpp"

#include "core/endian.hpp"
#include "format/vhdx/constants.hpp"

#include <fmt/format.h>

#include <cstring>
#include <optional>

namespace hypersdk::format::vhdx {

namespace {

std::string item_name(const Guid &g) {
    if (g == file_parameters_guid) return "File Parameters";
    if (g == virtual_disk_size_guid) return "Virtual Disk Size";
    if (g == page83_data_guid) return "Page 83 Data";
    if (g == logical_sector_size_guid) return "Logical Sector Size";
    if (g == physical_sector_size_guid) return "Physical Sector Size";
    if (g == parent_locator_guid) return "Parent Locator";
    return "item " + g.to_string();
}

bool is_known(const Guid &g) {
    return g == file_parameters_guid || g == virtual_disk_size_guid || g == page83_data_guid ||
           g == logical_sector_size_guid || g == physical_sector_size_guid || g == parent_locator_guid;
}

bool power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

Result<Metadata> read_metadata(const ImageFile &file, const RegionEntry &region) {
    if (region.length < metadata_table_size)
        return fail_corrupt(fmt::format("metadata region at {:#x} is {} bytes, smaller than its 64 KiB table",
                                        region.offset, region.length));
    std::vector<std::byte> table(metadata_table_size);
    HSDK_TRYV(file.read(region.offset, table));
    if (std::memcmp(table.data(), metadata_signature, 8) != 0)
        return fail_corrupt(fmt::format("metadata table at {:#x} has no 'metadata' signature", region.offset));
    const std::uint16_t count = le16(table.data(), 10);
    if (count > max_metadata_entries)
        return fail_corrupt(fmt::format("metadata table lists {} entries (at most {})", count, max_metadata_entries));

    Metadata md;
    std::optional<MetadataEntry> found[6];
    const Guid known[6] = {file_parameters_guid,     virtual_disk_size_guid,    page83_data_guid,
                           logical_sector_size_guid, physical_sector_size_guid, parent_locator_guid};
    for (std::uint16_t i = 0; i < count; ++i) {
        const std::byte *e = table.data() + 32 + std::size_t{i} * 32;
        MetadataEntry m{Guid::read(e), le32(e, 16), le32(e, 20), le32(e, 24)};
        const std::string name = item_name(m.guid);
        if (m.length == 0) {
            if (m.offset != 0) return fail_corrupt(fmt::format("metadata {} has length 0 but offset {:#x}", name, m.offset));
        } else {
            if (m.offset < metadata_table_size)
                return fail_corrupt(fmt::format("metadata {} at offset {:#x} lies inside the metadata table", name, m.offset));
            if (m.length > max_metadata_item_size)
                return fail_corrupt(fmt::format("metadata {} is {} bytes (at most 1 MiB)", name, m.length));
            if (std::uint64_t{m.offset} + m.length > region.length)
                return fail_corrupt(fmt::format("metadata {} ({:#x}+{:#x}) lies beyond the metadata region ({:#x} bytes)",
                                                name, m.offset, m.length, region.length));
        }
        if (!is_known(m.guid) && (m.flags & metadata_flag_is_required) != 0)
            return fail_unsupported(fmt::format("VHDX metadata {} is marked required but is unknown to this reader", name));
        for (int k = 0; k < 6; ++k) {
            if (m.guid != known[k]) continue;
            if (found[k]) return fail_corrupt(fmt::format("metadata table lists {} twice", name));
            found[k] = m;
        }
        md.entries.push_back(m);
    }

    static const std::uint32_t min_length[6] = {8, 8, 16, 4, 4, 20};
    auto read_item = [&](int k) -> Result<std::vector<std::byte>> {
        const std::string name = item_name(known[k]);
        if (!found[k]) return fail_corrupt(fmt::format("metadata has no {} item", name));
        if (found[k]->length < min_length[k])
            return fail_corrupt(fmt::format("metadata {} is {} bytes, expected at least {}", name, found[k]->length,
                                            min_length[k]));
        std::vector<std::byte> data(found[k]->length);
        HSDK_TRYV(file.read(region.offset + found[k]->offset, data));
        return data;
    };

    HSDK_TRY(auto params, read_item(0));
    md.block_size = le32(params.data(), 0);
    const std::uint32_t flags = le32(params.data(), 4);
    md.leave_blocks_allocated = (flags & leave_blocks_allocated_flag) != 0;
    md.has_parent = (flags & has_parent_flag) != 0;
    if (!power_of_two(md.block_size) || md.block_size < min_block_size || md.block_size > max_block_size)
        return fail_corrupt(fmt::format("block size {} is not a power of two between 1 MiB and 256 MiB", md.block_size));

    HSDK_TRY(auto size, read_item(1));
    md.virtual_size = le64(size.data(), 0);
    HSDK_TRY(auto page83, read_item(2));
    md.virtual_disk_id = Guid::read(page83.data());
    HSDK_TRY(auto logical, read_item(3));
    md.logical_sector_size = le32(logical.data(), 0);
    HSDK_TRY(auto physical, read_item(4));
    md.physical_sector_size = le32(physical.data(), 0);

    if (md.logical_sector_size != 512 && md.logical_sector_size != 4096)
        return fail_corrupt(fmt::format("logical sector size {} (must be 512 or 4096)", md.logical_sector_size));
    if (md.physical_sector_size != 512 && md.physical_sector_size != 4096)
        return fail_corrupt(fmt::format("physical sector size {} (must be 512 or 4096)", md.physical_sector_size));
    if (md.virtual_size > max_virtual_size)
        return fail_corrupt(fmt::format("virtual disk size {} exceeds the format's 64 TiB", md.virtual_size));
    if (md.virtual_size % md.logical_sector_size != 0)
        return fail_corrupt(fmt::format("virtual disk size {} is not a multiple of the logical sector size {}",
                                        md.virtual_size, md.logical_sector_size));
    if (md.has_parent) {
        HSDK_TRY(auto locator, read_item(5));
        md.parent_locator = std::move(locator);
    }
    return md;
}

void serialize_metadata(const Metadata &md, std::span<std::byte> out) {
    std::fill(out.begin(), out.end(), std::byte{0});
    std::byte *p = out.data();
    std::memcpy(p, metadata_signature, 8);
    struct Item {
        Guid guid;
        std::uint32_t length;
        std::uint32_t flags;
    };
    const Item items[] = {
        {file_parameters_guid, 8, metadata_flag_is_required},
        {virtual_disk_size_guid, 8, metadata_flag_is_required | metadata_flag_is_virtual_disk},
        {page83_data_guid, 16, metadata_flag_is_required | metadata_flag_is_virtual_disk},
        {logical_sector_size_guid, 4, metadata_flag_is_required | metadata_flag_is_virtual_disk},
        {physical_sector_size_guid, 4, metadata_flag_is_required | metadata_flag_is_virtual_disk},
    };
    store_le<std::uint16_t>(p + 10, static_cast<std::uint16_t>(std::size(items)));
    std::uint32_t offset = metadata_table_size;
    for (std::size_t i = 0; i < std::size(items); ++i) {
        std::byte *e = p + 32 + i * 32;
        items[i].guid.write(e);
        store_le<std::uint32_t>(e + 16, offset);
        store_le<std::uint32_t>(e + 20, items[i].length);
        store_le<std::uint32_t>(e + 24, items[i].flags);
        std::byte *item = p + offset;
        if (items[i].guid == file_parameters_guid) {
            store_le<std::uint32_t>(item, md.block_size);
            store_le<std::uint32_t>(item + 4, (md.leave_blocks_allocated ? leave_blocks_allocated_flag : 0u) |
                                                  (md.has_parent ? has_parent_flag : 0u));
        } else if (items[i].guid == virtual_disk_size_guid) {
            store_le<std::uint64_t>(item, md.virtual_size);
        } else if (items[i].guid == page83_data_guid) {
            md.virtual_disk_id.write(item);
        } else if (items[i].guid == logical_sector_size_guid) {
            store_le<std::uint32_t>(item, md.logical_sector_size);
        } else {
            store_le<std::uint32_t>(item, md.physical_sector_size);
        }
        offset += items[i].length;
    }
}

}  // namespace hypersdk::format::vhdx
