// VHD writer: fixed (optionally sized for Azure) and dynamic disks.
//
// The footer names 'win ' as its creator. qemu-img (up to 9.x) sizes a VHD by its CHS geometry
// unless the creator is one it knows to store the exact size in current_size ('win ', 'qem2',
// 'd2v ', 'CTXS', 'tap\0'); Hyper-V and Azure always use current_size. With 'win ' every reader
// agrees on current_size, so a disk whose size is not a whole CHS geometry keeps its exact size
// instead of being rounded down (which would cut off its last sectors).
#include "format/vhd/vhd_driver.hpp"
#include "format/vhd/vhd_format.hpp"
#include "format/block_map_writes.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <random>

namespace hypersdk::format::vhd {
namespace {

constexpr std::uint64_t MiB = 1ULL << 20;
constexpr std::uint64_t granule = 4096;  // small, so zero runs inside a block stay holes in the file
constexpr std::uint32_t default_block_size = 2 * MiB;
constexpr std::uint32_t min_block_size = 4096;
constexpr std::uint32_t max_block_size = 256 * MiB;
constexpr std::uint64_t bat_offset = footer_size + dynamic_header_size;  // 1536, right after the header
constexpr FourCC creator_app = {'w', 'i', 'n', ' '};
constexpr std::uint32_t creator_version = 0x000a0000;  // 10.0, what current Windows writes with 'win '
constexpr FourCC creator_os = {'W', 'i', '2', 'k'};

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Uuid random_uuid() {
    std::random_device rd;
    Uuid u{};
    for (std::size_t i = 0; i < u.size(); i += 4) {
        const std::uint32_t v = rd();
        for (std::size_t k = 0; k < 4; ++k) u[i + k] = static_cast<std::uint8_t>(v >> (8 * k));
    }
    u[6] = static_cast<std::uint8_t>((u[6] & 0x0F) | 0x40);  // RFC 4122 version 4 (random)
    u[8] = static_cast<std::uint8_t>((u[8] & 0x3F) | 0x80);
    return u;
}

std::uint32_t timestamp_now() {
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr)) - timestamp_epoch;
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(now, 0, 0xFFFFFFFF));
}

Footer make_footer(std::uint64_t size, DiskType type, std::uint64_t data_offset) {
    Footer f;
    f.data_offset = data_offset;
    f.timestamp = timestamp_now();
    f.creator_app = creator_app;
    f.creator_version = creator_version;
    f.creator_os = creator_os;
    f.original_size = size;
    f.current_size = size;
    f.geometry = geometry_for_sectors(size / sector_size);
    f.disk_type = static_cast<std::uint32_t>(type);
    f.unique_id = random_uuid();
    return f;
}

class FixedWriter final : public DiskWriter {
public:
    FixedWriter(io::File *file, std::uint64_t size) : file_(file), size_(size), footer_(make_footer(size, DiskType::fixed, no_data_offset)) {}

    std::uint64_t granularity() const noexcept override { return granule; }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *) override {
        if (offset >= size_) return success();
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), size_ - offset));
        return file_->write_behind(offset, data.first(n));
    }

    Result<void> finish() override {
        std::array<std::byte, footer_size> raw{};
        serialize_footer(footer_, raw);
        return file_->write_all(size_, raw);
    }

private:
    io::File *file_;
    std::uint64_t size_;
    Footer footer_;
};

class DynamicWriter final : public DiskWriter {
public:
    DynamicWriter(io::File *file, std::uint64_t size, std::uint32_t block_size)
        : file_(file),
          size_(size),
          block_size_(block_size),
          bitmap_size_(static_cast<std::uint32_t>(align_up((block_size / sector_size + 7) / 8, sector_size))),
          // Block data 4 KiB-aligned in the file, so each 4 KiB granule is one file-system block;
          // not for small blocks, where a bitmap alone in a file-system block would cost too much.
          data_alignment_(block_size >= 64 * 1024 ? 4096 : sector_size),
          // At least one entry: libvhdi refuses an empty BAT.
          bat_(std::max<std::uint64_t>(1, (size + block_size - 1) / block_size), bat_unallocated),
          bat_bytes_(align_up(bat_.size() * 4, sector_size)),
          next_free_(bat_offset + bat_bytes_),
          bitmap_(bitmap_size_, std::byte{0xFF}),
          footer_(make_footer(size, DiskType::dynamic, footer_size)) {}

    std::uint64_t granularity() const noexcept override { return granule; }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *) override {
        if (offset >= size_) return success();
        data = data.first(static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), size_ - offset)));
        return write_through_block_map(*file_, offset, data, block_size_, [&](std::uint64_t index) -> Result<std::uint64_t> {
            if (bat_[index] == bat_unallocated) HSDK_TRYV(allocate(index));
            return std::uint64_t{bat_[index]} * sector_size + bitmap_size_;
        });
    }

    Result<void> finish() override {
        std::array<std::byte, footer_size> foot{};
        serialize_footer(footer_, foot);
        DynamicHeader h;
        h.table_offset = bat_offset;
        h.max_table_entries = static_cast<std::uint32_t>(bat_.size());
        h.block_size = block_size_;
        std::array<std::byte, dynamic_header_size> head{};
        serialize_dynamic_header(h, head);
        // Padding after the last entry reads as unallocated entries too.
        std::vector<std::byte> bat(static_cast<std::size_t>(bat_bytes_), std::byte{0xFF});
        for (std::size_t i = 0; i < bat_.size(); ++i) store_be<std::uint32_t>(bat.data() + 4 * i, bat_[i]);
        HSDK_TRYV(file_->write_all(0, foot));
        HSDK_TRYV(file_->write_all(footer_size, head));
        HSDK_TRYV(file_->write_all(bat_offset, bat));
        return file_->write_all(next_free_, foot);
    }

private:
    // Blocks are laid out in the order they are first written. Their bitmaps are all ones: the
    // block's sectors are all "here", and those never written are holes in the file, reading as
    // zeros (what qemu does too).
    Result<void> allocate(std::uint64_t index) {
        const std::uint64_t at = align_up(next_free_ + bitmap_size_, data_alignment_) - bitmap_size_;
        if (at / sector_size >= bat_unallocated)
            return fail(Errc::invalid_argument, "VHD file would exceed 2 TiB, the most a BAT entry can address");
        HSDK_TRYV(file_->write_all(at, bitmap_));
        bat_[index] = static_cast<std::uint32_t>(at / sector_size);
        next_free_ = at + bitmap_size_ + block_size_;
        return success();
    }

    io::File *file_;
    std::uint64_t size_;
    std::uint32_t block_size_;
    std::uint32_t bitmap_size_;
    std::uint64_t data_alignment_;
    std::vector<std::uint32_t> bat_;
    std::uint64_t bat_bytes_;
    std::uint64_t next_free_;
    std::vector<std::byte> bitmap_;
    Footer footer_;
};

}  // namespace

Result<std::unique_ptr<DiskWriter>> create_vhd(const CreateRequest &req) {
    FormatOptions opts = req.options;
    const auto subformat = take_option(opts, "subformat");
    const auto azure_text = take_option(opts, "azure");
    const auto block_size_text = take_option(opts, "block_size");
    HSDK_TRYV(reject_unknown_options(opts, "vhd"));
    if (req.compress) return fail(Errc::invalid_argument, "format 'vhd' does not support compression");

    DiskType type = DiskType::dynamic;
    if (subformat) {
        if (*subformat == "fixed") type = DiskType::fixed;
        else if (*subformat != "dynamic")
            return fail(Errc::invalid_argument, fmt::format("option subformat: expected fixed or dynamic, got '{}'", *subformat));
    }
    bool azure = false;
    if (azure_text) {
        HSDK_TRY(azure, parse_bool_option("azure", *azure_text));
    }
    if (azure) {
        if (subformat && type == DiskType::dynamic) return fail(Errc::invalid_argument, "Azure accepts fixed VHDs only");
        type = DiskType::fixed;
    }
    std::uint32_t block_size = default_block_size;
    if (block_size_text) {
        if (type != DiskType::dynamic) return fail(Errc::invalid_argument, "option block_size applies to dynamic VHDs only");
        HSDK_TRY(const auto bs, parse_size_option("block_size", *block_size_text));
        // Under 4 KiB qemu computes no bitmap at all (its formula rounds one bit down to nothing)
        // and would read such a file wrong.
        if (bs < min_block_size || bs > max_block_size || (bs & (bs - 1)) != 0)
            return fail(Errc::invalid_argument,
                        fmt::format("option block_size: {} is not a power of two between 4 KiB and 256 MiB", bs));
        block_size = static_cast<std::uint32_t>(bs);
    }

    // VHDs hold whole sectors; Azure wants the disk a whole number of MiB.
    std::uint64_t size = align_up(req.virtual_size, sector_size);
    if (azure) size = align_up(size, MiB);
    if (size / sector_size > max_sectors)
        return fail(Errc::invalid_argument,
                    fmt::format("a {}-byte disk is larger than 2040 GiB, the most a VHD can hold (use vhdx)", size));

    if (type == DiskType::fixed && size == 0)
        return fail(Errc::invalid_argument,
                    "an empty disk cannot be a fixed VHD: a lone footer at offset 0 reads as a broken dynamic VHD");
    HSDK_TRY(auto *file, req.outputs->add(req.path));
    if (type == DiskType::fixed) {
        HSDK_TRYV(file->truncate(size + footer_size));  // sparse: never-written ranges stay holes
        return std::unique_ptr<DiskWriter>(new FixedWriter(file, size));
    }
    return std::unique_ptr<DiskWriter>(new DynamicWriter(file, size, block_size));
}

}  // namespace hypersdk::format::vhd
