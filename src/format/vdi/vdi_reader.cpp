// VDI reader: dynamic and static VirtualBox images, version 1.1.
//
// The block map gives, for each block of the disk, the index of the block in the data area
// (offset_data + index * block_size), 0xFFFFFFFF for a block never written (a hole) or
// 0xFFFFFFFE for a discarded block (zeros).
#include "format/host_holes.hpp"
#include "format/vdi/vdi_driver.hpp"
#include "format/vdi/vdi_format.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vdi {
namespace {

// The block map we load is capped: 256 MiB of entries maps 64 TiB at 1 MiB blocks.
constexpr std::uint64_t max_bmap_bytes = 256ULL << 20;
constexpr std::uint32_t max_block_size = 256U << 20;

std::uint64_t div_round_up(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0); }

bool is_allocated(std::uint32_t entry) { return entry < block_discarded; }

class VdiLayer final : public Layer {
public:
    static Result<std::unique_ptr<Layer>> open(OpenRequest req);

    std::uint64_t virtual_size() const noexcept override { return virtual_size_; }

    Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        HSDK_TRYV(check_range(offset, length));
        std::vector<Extent> runs;
        map(offset, length, runs);
        // Stored ranges that are holes in a sparse file read as zeros: no need to copy them.
        for (const auto &r : runs) {
            if (r.kind == ExtentKind::data) HSDK_TRYV(append_split_by_host_holes(file_, r, out));
            else append_extent(out, r);
        }
        return success();
    }

    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override {
        HSDK_TRYV(check_range(offset, buf.size()));
        std::vector<Extent> runs;
        map(offset, buf.size(), runs);  // neighbouring blocks stored in order come out as one run
        for (const auto &r : runs) {
            auto part = buf.subspan(static_cast<std::size_t>(r.offset - offset), static_cast<std::size_t>(r.length));
            if (r.kind == ExtentKind::data) {
                HSDK_TRYV(file_.read_exact(r.host_offset, part));
            } else {
                std::memset(part.data(), 0, part.size());
            }
        }
        return success();
    }

    ImageInfo info() const override;
    Result<CheckReport> check() override;

private:
    explicit VdiLayer(io::Source file) : file_(std::move(file)) {}

    Result<void> load(std::uint64_t file_size);

    Result<void> check_range(std::uint64_t offset, std::uint64_t length) const {
        if (offset > virtual_size_ || length > virtual_size_ - offset)
            return fail(Errc::invalid_argument,
                        fmt::format("VDI range {:#x}+{:#x} lies beyond the disk ({} bytes)", offset, length, virtual_size_));
        return success();
    }

    std::uint64_t blocks_in_disk() const { return div_round_up(virtual_size_, h_.block_size); }

    void map(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) const {
        const std::uint64_t bs = h_.block_size;
        for (std::uint64_t pos = offset, end = offset + length; pos < end;) {
            const std::uint64_t index = pos / bs;
            const std::uint64_t in_block = pos % bs;
            const std::uint64_t n = std::min(bs - in_block, end - pos);
            const std::uint32_t entry = bmap_[static_cast<std::size_t>(index)];
            if (entry == block_unallocated)
                append_extent(out, Extent{pos, n, ExtentKind::hole});
            else if (entry == block_discarded)
                append_extent(out, Extent{pos, n, ExtentKind::zero});
            else
                append_extent(out, Extent{pos, n, ExtentKind::data, 0, h_.offset_data + std::uint64_t{entry} * bs + in_block});
            pos += n;
        }
    }

    io::Source file_;
    std::uint64_t file_size_ = 0;
    Header h_;
    std::uint64_t virtual_size_ = 0;
    std::vector<std::uint32_t> bmap_;
};

Result<void> VdiLayer::load(std::uint64_t file_size) {
    file_size_ = file_size;
    if (file_size < header_area)
        return fail_corrupt(fmt::format("file is too small to be a VDI ({} bytes, the header alone is 512)", file_size));
    std::array<std::byte, header_area> raw{};
    HSDK_TRYV(file_.read_exact(0, raw));
    h_ = parse_header(raw);
    if (h_.signature != signature) return fail_corrupt(fmt::format("no VDI signature at offset 0x40 (found {:#010x})", h_.signature));
    if (h_.version != version_1_1)
        return fail_unsupported(fmt::format("VDI version {}.{} (only 1.1 is supported)", h_.version >> 16, h_.version & 0xFFFF));
    if (h_.header_size < header_size_v1 || preheader_size + h_.header_size > h_.offset_bmap)
        return fail_corrupt(fmt::format("VDI header size {:#x} is wrong (at least {:#x}, and the block map at {:#x} must follow it)",
                                        h_.header_size, header_size_v1, h_.offset_bmap));

    const auto type = h_.image_type;
    if (type == static_cast<std::uint32_t>(ImageType::undo) || type == static_cast<std::uint32_t>(ImageType::diff) ||
        !uuid_is_null(h_.uuid_link) || !uuid_is_null(h_.uuid_parent))
        return fail_unsupported(fmt::format(
            "differencing VDI ({} image, parent {}): a VDI does not record where its parent is (VirtualBox keeps that in its "
            "media registry); clone or merge the snapshot in VirtualBox first",
            image_type_name(type), uuid_string(h_.uuid_link)));
    if (type != static_cast<std::uint32_t>(ImageType::dynamic) && type != static_cast<std::uint32_t>(ImageType::fixed))
        return fail_unsupported(fmt::format("VDI image type {}", type));
    if (h_.sector_size != sector_size) return fail_unsupported(fmt::format("VDI sector size {} (only 512)", h_.sector_size));
    if (h_.offset_bmap % sector_size != 0 || h_.offset_data % sector_size != 0)
        return fail_unsupported(fmt::format("VDI block map ({:#x}) or data ({:#x}) not sector-aligned", h_.offset_bmap, h_.offset_data));

    const std::uint64_t bs = h_.block_size;
    if (bs < sector_size || bs > max_block_size || (bs & (bs - 1)) != 0)
        return fail_corrupt(fmt::format("VDI block size {} is not a power of two between 512 bytes and 256 MiB", bs));
    if (h_.block_extra != 0) return fail_unsupported(fmt::format("VDI blocks with {} bytes of extra data each", h_.block_extra));
    // An odd disk size (VBoxManage convertfromraw makes them) is rounded up to whole sectors, as qemu does.
    virtual_size_ = div_round_up(h_.disk_size, sector_size) * sector_size;
    if (virtual_size_ > std::uint64_t{h_.blocks_in_image} * bs)
        return fail_corrupt(fmt::format("VDI disk size {} exceeds the {} bytes its {} blocks of {} bytes hold", h_.disk_size,
                                        std::uint64_t{h_.blocks_in_image} * bs, h_.blocks_in_image, bs));

    const std::uint64_t bmap_bytes = std::uint64_t{h_.blocks_in_image} * 4;
    if (bmap_bytes > max_bmap_bytes)
        return fail_corrupt(fmt::format("VDI block map of {} entries is larger than {} MiB", h_.blocks_in_image, max_bmap_bytes >> 20));
    if (h_.offset_bmap > file_size || bmap_bytes > file_size - h_.offset_bmap)
        return fail_corrupt(fmt::format("VDI block map ({} entries at offset {:#x}) extends beyond the end of the file ({} bytes)",
                                        h_.blocks_in_image, h_.offset_bmap, file_size));
    if (h_.offset_data < h_.offset_bmap + bmap_bytes)
        return fail_corrupt(fmt::format("VDI data area at {:#x} overlaps the block map ({:#x}..{:#x})", h_.offset_data,
                                        h_.offset_bmap, h_.offset_bmap + bmap_bytes));
    std::vector<std::byte> raw_map(static_cast<std::size_t>(bmap_bytes));
    HSDK_TRYV(file_.read_exact(h_.offset_bmap, raw_map));
    bmap_.resize(h_.blocks_in_image);
    for (std::size_t i = 0; i < bmap_.size(); ++i) bmap_[i] = le32(raw_map.data(), 4 * i);

    const std::uint64_t blocks = blocks_in_disk();
    for (std::uint64_t i = 0; i < blocks; ++i) {
        const std::uint32_t e = bmap_[static_cast<std::size_t>(i)];
        if (!is_allocated(e)) continue;
        // The part of the block inside the disk must be in the file.
        const std::uint64_t at = h_.offset_data + std::uint64_t{e} * bs;
        const std::uint64_t need = std::min(bs, virtual_size_ - i * bs);
        if (at > file_size || need > file_size - at)
            return fail_corrupt(fmt::format("VDI block map entry {} points to data block {} at offset {:#x}, beyond the end of the "
                                            "file ({} bytes)",
                                            i, e, at, file_size));
    }
    return success();
}

Result<std::unique_ptr<Layer>> VdiLayer::open(OpenRequest req) {
    std::unique_ptr<VdiLayer> layer(new VdiLayer(std::move(req.file)));
    HSDK_TRYV(layer->load(req.file_size));
    return std::unique_ptr<Layer>(std::move(layer));
}

ImageInfo VdiLayer::info() const {
    ImageInfo i;
    i.format = "vdi";
    i.subformat = std::string(image_type_name(h_.image_type));
    i.virtual_size = virtual_size_;
    if (auto a = file_.allocated_size()) i.actual_size = a.value();
    i.cluster_size = h_.block_size;
    i.files = {file_.path()};
    auto &j = i.format_specific;
    j["image-type"] = image_type_name(h_.image_type);
    j["version"] = fmt::format("{}.{}", h_.version >> 16, h_.version & 0xFFFF);
    j["text"] = field_text(h_.text);
    j["description"] = field_text(h_.description);
    j["uuid"] = uuid_string(h_.uuid_image);
    j["last-modification-uuid"] = uuid_string(h_.uuid_last_snap);
    j["disk-size"] = h_.disk_size;
    j["block-size"] = h_.block_size;
    j["blocks-in-image"] = h_.blocks_in_image;
    j["blocks-allocated"] = h_.blocks_allocated;
    j["discarded-blocks"] = std::count(bmap_.begin(), bmap_.end(), block_discarded);
    j["header-size"] = h_.header_size;
    j["block-map-offset"] = h_.offset_bmap;
    j["data-offset"] = h_.offset_data;
    return i;
}

// qemu-img check's rules for VDI (each allocated entry inside the image's blocks, no block used
// twice, blocks_allocated right), plus: an entry at or past blocks_allocated is an error, since
// VirtualBox appends the next new block there and would overwrite it.
Result<CheckReport> VdiLayer::check() {
    CheckReport r;
    r.format = "vdi";
    auto error = [&](std::string m) { r.add_corruption("ERROR: " + std::move(m)); };
    std::vector<bool> used(h_.blocks_in_image, false);  // data blocks some map entry points to
    std::uint64_t allocated = 0;
    std::uint64_t end = h_.offset_data;
    for (std::uint32_t i = 0; i < h_.blocks_in_image; ++i) {
        const std::uint32_t e = bmap_[i];
        if (!is_allocated(e)) continue;
        if (e >= h_.blocks_in_image) {
            error(fmt::format("block map entry {} points to data block {}, beyond the {} blocks of the image", i, e, h_.blocks_in_image));
            continue;
        }
        ++allocated;
        if (used[e]) {
            const auto first = static_cast<std::size_t>(std::find(bmap_.begin(), bmap_.end(), e) - bmap_.begin());
            error(fmt::format("data block {} is used by block map entries {} and {}", e, first, i));
        }
        used[e] = true;
        if (e >= h_.blocks_allocated)
            error(fmt::format("block map entry {} points to data block {}, past the {} allocated blocks", i, e, h_.blocks_allocated));
        end = std::max(end, h_.offset_data + (std::uint64_t{e} + 1) * h_.block_size);
    }
    if (allocated != h_.blocks_allocated)
        error(fmt::format("allocated blocks mismatch: the block map uses {}, the header says {}", allocated, h_.blocks_allocated));
    r.allocated_clusters = allocated;
    r.total_clusters = h_.blocks_in_image;
    r.image_end_offset = end;
    return r;
}

}  // namespace

Result<std::unique_ptr<Layer>> open_vdi(OpenRequest request) { return VdiLayer::open(std::move(request)); }

}  // namespace hypersdk::format::vdi
