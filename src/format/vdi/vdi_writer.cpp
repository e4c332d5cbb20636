// VDI writer: dynamic (blocks appended in the order they are first written) or static (every
// block allocated in order, the file preallocated sparse). Layout as VirtualBox makes it: header,
// block map at 1 MiB, data at the next MiB boundary after the map.
#include "format/vdi/vdi_driver.hpp"
#include "format/vdi/vdi_format.hpp"
#include "format/block_map_writes.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace hypersdk::format::vdi {
namespace {

constexpr std::uint64_t granule = 4096;  // small, so zero runs inside a 1 MiB block stay holes
constexpr std::uint64_t layout_alignment = 1 << 20;
// 256 MiB of block map (64 TiB of disk), what our reader loads; qemu's limit is higher.
constexpr std::uint64_t max_blocks = (256ULL << 20) / 4;

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Uuid random_uuid() {
    std::random_device rd;
    Uuid u{};
    for (std::size_t i = 0; i < u.size(); i += 4) {
        const std::uint32_t v = rd();
        for (std::size_t k = 0; k < 4; ++k) u[i + k] = static_cast<std::uint8_t>(v >> (8 * k));
    }
    // Version 4 (random) and the RFC 4122 variant, in RTUUID's little-endian field layout.
    u[7] = static_cast<std::uint8_t>((u[7] & 0x0F) | 0x40);
    u[8] = static_cast<std::uint8_t>((u[8] & 0x3F) | 0x80);
    return u;
}

class VdiWriter final : public DiskWriter {
public:
    VdiWriter(io::File *file, Header header) : file_(file), h_(std::move(header)) {
        bmap_.assign(h_.blocks_in_image, block_unallocated);
        if (h_.image_type == static_cast<std::uint32_t>(ImageType::fixed))
            for (std::uint32_t i = 0; i < h_.blocks_in_image; ++i) bmap_[i] = i;
    }

    std::uint64_t granularity() const noexcept override { return granule; }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *) override {
        if (offset >= h_.disk_size) return success();
        const std::uint64_t bs = h_.block_size;
        data = data.first(static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), h_.disk_size - offset)));
        return write_through_block_map(*file_, offset, data, bs, [&](std::uint64_t index) -> Result<std::uint64_t> {
            // Commits arrive in ascending order, so blocks are appended in disk order.
            if (bmap_[index] == block_unallocated) bmap_[index] = h_.blocks_allocated++;
            return h_.offset_data + std::uint64_t{bmap_[index]} * bs;
        });
    }

    Result<void> finish() override {
        std::array<std::byte, header_area> head{};
        serialize_header(h_, head);
        std::vector<std::byte> map(bmap_.size() * 4);
        for (std::size_t i = 0; i < bmap_.size(); ++i) store_le<std::uint32_t>(map.data() + 4 * i, bmap_[i]);
        HSDK_TRYV(file_->write_all(0, head));
        HSDK_TRYV(file_->write_all(h_.offset_bmap, map));
        // Whole blocks: the tail of the last one (and of never-written ranges) stays a hole.
        return file_->truncate(h_.offset_data + std::uint64_t{h_.blocks_allocated} * h_.block_size);
    }

private:
    io::File *file_;
    Header h_;
    std::vector<std::uint32_t> bmap_;
};

}  // namespace

Result<std::unique_ptr<DiskWriter>> create_vdi(const CreateRequest &req) {
    FormatOptions opts = req.options;
    const auto static_text = take_option(opts, "static");
    HSDK_TRYV(reject_unknown_options(opts, "vdi"));
    if (req.compress) return fail(Errc::invalid_argument, "format 'vdi' does not support compression");
    bool is_static = false;
    if (static_text) {
        HSDK_TRY(is_static, parse_bool_option("static", *static_text));
    }

    Header h;
    std::memcpy(h.text.data(), oracle_text.data(), oracle_text.size());
    h.image_type = static_cast<std::uint32_t>(is_static ? ImageType::fixed : ImageType::dynamic);
    // qemu rounds an odd size up to whole sectors when reading; store it that way.
    h.disk_size = align_up(req.virtual_size, sector_size);
    const std::uint64_t blocks = align_up(h.disk_size, h.block_size) / h.block_size;
    if (blocks > max_blocks)
        return fail(Errc::invalid_argument, fmt::format("a {}-byte disk is too large for a VDI (at most {} blocks of 1 MiB)",
                                                        req.virtual_size, max_blocks));
    h.blocks_in_image = static_cast<std::uint32_t>(blocks);
    h.offset_bmap = static_cast<std::uint32_t>(layout_alignment);
    const std::uint64_t data = align_up(layout_alignment + blocks * 4, layout_alignment);
    if (data > 0xFFFFFFFFULL) return fail(Errc::invalid_argument, "VDI block map too large for its 32-bit data offset");
    h.offset_data = static_cast<std::uint32_t>(data);
    h.blocks_allocated = is_static ? h.blocks_in_image : 0;
    h.uuid_image = random_uuid();
    h.uuid_last_snap = random_uuid();

    HSDK_TRY(auto *file, req.outputs->add(req.path));
    // Static: the whole data area exists from the start, as holes until written.
    if (is_static) HSDK_TRYV(file->truncate(h.offset_data + blocks * h.block_size));
    return std::unique_ptr<DiskWriter>(new VdiWriter(file, std::move(h)));
}

}  // namespace hypersdk::format::vdi
