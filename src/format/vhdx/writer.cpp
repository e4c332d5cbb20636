// The VHDX writer: dynamic or fixed disks laid out like qemu-img's (1 MiB log at 1 MiB, BAT at
// 2 MiB, 1 MiB metadata region, payload blocks after it). Data goes straight to its place in the
// file; the metadata is written once, at the end, and the log stays empty.
//
// Options: subformat=dynamic|fixed, block_size (1 MiB..256 MiB, a power of two; default by disk
// size like qemu-img: 8 MiB up to 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, 64 MiB above),
// logical_sector_size=512|4096 (default 512), physical_sector_size=512|4096 (default: the logical one).
#include "format/block_map_writes.hpp"
#include "format/vhdx/bat.hpp"
#include "format/vhdx/constants.hpp"
#include "format/vhdx/headers.hpp"
#include "format/vhdx/metadata.hpp"
#include "format/vhdx/utf16.hpp"
#include "format/vhdx/vhdx.hpp"

#include <hypersdk/version.hpp>

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vhdx {

namespace {

constexpr std::uint64_t log_offset = 1 * MiB;
constexpr std::uint32_t log_length = 1 * MiB;
constexpr std::uint64_t bat_offset = log_offset + log_length;
constexpr std::uint32_t metadata_length = 1 * MiB;
// Runs the pipeline hands over: small enough that zero stretches inside a block stay holes.
constexpr std::uint64_t writer_granularity = 64 * KiB;
// Like the reader: refuse a BAT that does not fit comfortably in memory.
constexpr std::uint64_t max_bat_bytes = 256 * MiB;

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::uint32_t default_block_size(std::uint64_t size) {
    if (size > 32 * TiB) return 64 * MiB;
    if (size > 100 * GiB) return 32 * MiB;
    if (size > 1 * GiB) return 16 * MiB;
    return 8 * MiB;
}

struct Layout {
    BatGeometry geometry;
    std::uint64_t bat_length = 0;
    std::uint64_t metadata_offset = 0;
    std::uint64_t data_offset = 0;
};

class VhdxWriter final : public DiskWriter {
public:
    VhdxWriter(io::File *file, Layout layout, Metadata metadata)
        : file_(file), layout_(layout), md_(std::move(metadata)), next_block_offset_(layout.data_offset) {
        if (!md_.leave_blocks_allocated) block_offsets_.assign(static_cast<std::size_t>(layout_.geometry.payload_blocks), 0);
    }

    std::uint64_t granularity() const noexcept override { return writer_granularity; }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *) override {
        const std::uint64_t size = md_.virtual_size;
        if (offset >= size) return success();
        data = data.first(static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), size - offset)));
        return write_through_block_map(*file_, offset, data, md_.block_size,
                                       [this](std::uint64_t block) -> Result<std::uint64_t> { return block_file_offset(block); });
    }

    Result<void> finish() override {
        const BatGeometry &g = layout_.geometry;
        // Every allocated block occupies its whole size in the file (the spec grows files by blocks);
        // what was never written stays a hole.
        const std::uint64_t end = md_.leave_blocks_allocated ? layout_.data_offset + g.payload_blocks * g.block_size
                                                             : next_block_offset_;
        HSDK_TRYV(file_->truncate(end));
        HSDK_TRYV(write_bat());

        std::vector<std::byte> metadata(metadata_table_size + 256);
        serialize_metadata(md_, metadata);
        HSDK_TRYV(file_->write_all(layout_.metadata_offset, metadata));

        RegionTable rt;
        rt.entries.push_back({bat_region_guid, bat_offset, static_cast<std::uint32_t>(layout_.bat_length), true});
        rt.entries.push_back({metadata_region_guid, layout_.metadata_offset, metadata_length, true});
        std::vector<std::byte> table(region_table_size);
        serialize_region_table(rt, table);
        HSDK_TRYV(file_->write_all(region_table1_offset, table));
        HSDK_TRYV(file_->write_all(region_table2_offset, table));

        Header h;
        h.file_write_guid = Guid::random();
        h.data_write_guid = Guid::random();
        h.log_version = 0;
        h.version = 1;
        h.log_length = log_length;
        h.log_offset = log_offset;
        std::vector<std::byte> slot(header_size);
        h.sequence = 1;
        serialize_header(h, slot);
        HSDK_TRYV(file_->write_all(header1_offset, slot));
        h.sequence = 2;
        serialize_header(h, slot);
        HSDK_TRYV(file_->write_all(header2_offset, slot));

        std::vector<std::byte> identifier(8 + creator_bytes);
        std::memcpy(identifier.data(), file_signature, 8);
        auto creator = utf8_to_utf16le(fmt::format("libhypersdk {}", hypersdk::version()));
        creator.resize(std::min(creator.size(), creator_bytes - 2));
        std::memcpy(identifier.data() + 8, creator.data(), creator.size());
        return file_->write_all(file_identifier_offset, identifier);
    }

private:
    std::uint64_t block_file_offset(std::uint64_t block) {
        if (md_.leave_blocks_allocated) return layout_.data_offset + block * md_.block_size;
        auto &slot = block_offsets_[static_cast<std::size_t>(block)];
        if (slot == 0) {
            // First write to this block: it goes after every block allocated so far.
            slot = next_block_offset_;
            next_block_offset_ += md_.block_size;
        }
        return slot;
    }

    Result<void> write_bat() {
        const BatGeometry &g = layout_.geometry;
        constexpr std::size_t per_write = 128 * 1024;  // entries per 1 MiB write
        std::vector<std::byte> buf;
        const std::uint64_t stride = g.chunk_ratio + 1;
        for (std::uint64_t first = 0; first < g.total_entries; first += per_write) {
            const std::uint64_t count = std::min<std::uint64_t>(per_write, g.total_entries - first);
            buf.assign(static_cast<std::size_t>(count * 8), std::byte{0});
            for (std::uint64_t i = first; i < first + count; ++i) {
                if (i % stride == g.chunk_ratio) continue;  // sector bitmap entries stay NOT_PRESENT
                const std::uint64_t block = i - i / stride;
                std::uint64_t entry = 0;
                if (md_.leave_blocks_allocated)
                    entry = make_entry(static_cast<std::uint8_t>(BlockState::fully_present), layout_.data_offset + block * g.block_size);
                else if (const std::uint64_t at = block_offsets_[static_cast<std::size_t>(block)]; at != 0)
                    entry = make_entry(static_cast<std::uint8_t>(BlockState::fully_present), at);
                store_le<std::uint64_t>(buf.data() + (i - first) * 8, entry);
            }
            HSDK_TRYV(file_->write_all(bat_offset + first * 8, buf));
        }
        return success();
    }

    io::File *file_;
    Layout layout_;
    Metadata md_;
    std::vector<std::uint64_t> block_offsets_;  // dynamic: file offset of each payload block, 0 = none
    std::uint64_t next_block_offset_;
};

Result<std::uint32_t> sector_size_option(std::string_view key, const std::optional<std::string> &value,
                                         std::uint32_t fallback) {
    if (!value) return fallback;
    HSDK_TRY(auto v, parse_size_option(key, *value));
    if (v != 512 && v != 4096)
        return fail(Errc::invalid_argument, fmt::format("option {}: must be 512 or 4096, not '{}'", key, *value));
    return static_cast<std::uint32_t>(v);
}

}  // namespace

Result<std::unique_ptr<DiskWriter>> create(const CreateRequest &req) {
    FormatOptions opts = req.options;
    const auto subformat = take_option(opts, "subformat");
    const auto block_size_text = take_option(opts, "block_size");
    const auto logical_text = take_option(opts, "logical_sector_size");
    const auto physical_text = take_option(opts, "physical_sector_size");
    HSDK_TRYV(reject_unknown_options(opts, "vhdx"));
    if (req.compress) return fail(Errc::invalid_argument, "format 'vhdx' does not support compression");

    bool fixed = false;
    if (subformat && *subformat == "fixed")
        fixed = true;
    else if (subformat && *subformat != "dynamic")
        return fail(Errc::invalid_argument,
                    fmt::format("option subformat: '{}' is not a VHDX subformat (dynamic or fixed)", *subformat));

    HSDK_TRY(const std::uint32_t logical, sector_size_option("logical_sector_size", logical_text, 512));
    HSDK_TRY(const std::uint32_t physical, sector_size_option("physical_sector_size", physical_text, logical));
    // The format counts the disk in logical sectors: a size in between is rounded up, as qemu-img does.
    const std::uint64_t size = round_up(req.virtual_size, logical);
    if (size > max_virtual_size)
        return fail(Errc::invalid_argument, fmt::format("a VHDX disk holds at most 64 TiB; {} bytes requested", req.virtual_size));

    std::uint64_t block_size = default_block_size(size);
    if (block_size_text) {
        HSDK_TRY(block_size, parse_size_option("block_size", *block_size_text));
        if (block_size < min_block_size || block_size > max_block_size || (block_size & (block_size - 1)) != 0)
            return fail(Errc::invalid_argument,
                        fmt::format("option block_size: '{}' is not a power of two between 1M and 256M", *block_size_text));
    }

    Layout layout;
    layout.geometry = BatGeometry::compute(size, static_cast<std::uint32_t>(block_size), logical, false);
    const std::uint64_t bat_bytes = layout.geometry.total_entries * 8;
    if (bat_bytes > max_bat_bytes)
        return fail(Errc::invalid_argument, fmt::format("a {} byte disk with {} byte blocks needs a {} MiB BAT; choose a larger "
                                                        "block_size",
                                                        size, block_size, bat_bytes / MiB));
    layout.bat_length = round_up(std::max<std::uint64_t>(bat_bytes, 1), MiB);
    layout.metadata_offset = bat_offset + layout.bat_length;
    layout.data_offset = layout.metadata_offset + metadata_length;

    Metadata md;
    md.block_size = static_cast<std::uint32_t>(block_size);
    md.leave_blocks_allocated = fixed;
    md.virtual_size = size;
    md.logical_sector_size = logical;
    md.physical_sector_size = physical;
    md.virtual_disk_id = Guid::random();

    HSDK_TRY(auto *file, req.outputs->add(req.path));
    return std::unique_ptr<DiskWriter>(new VhdxWriter(file, layout, std::move(md)));
}

}  // namespace hypersdk::format::vhdx
