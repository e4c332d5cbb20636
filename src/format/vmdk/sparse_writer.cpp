// monolithicSparse writer: one hosted sparse file (version 1, redundant grain tables), laid out as qemu
// and VMware do:
//
//   header | descriptor (20+ sectors) | redundant GD | redundant GTs | GD | GTs | pad to a grain | grains
//
// Every grain table is preallocated; grains are appended in the order the pipeline commits them (which
// is ascending, so neighbouring grains become one large write); all-zero grains stay unallocated. The
// tables are kept in memory and written once, at finish().
#include "format/vmdk/writers.hpp"

#include "core/endian.hpp"
#include "format/vmdk/sparse_header.hpp"

#include <fmt/format.h>

#include <cstring>

namespace hypersdk::format::vmdk {
namespace {

class MonolithicSparseWriter final : public DiskWriter {
public:
    MonolithicSparseWriter(io::File *file, SparseHeader header, std::string descriptor, std::uint64_t grains, std::uint64_t tables)
        : file_(file), header_(header), descriptor_(std::move(descriptor)), tables_(tables),
          entries_(static_cast<std::size_t>(grains), 0), next_sector_(header.overhead) {}

    std::uint64_t granularity() const noexcept override { return writer_grain_bytes; }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *) override {
        const std::uint64_t first = offset / writer_grain_bytes;
        const std::uint64_t count = data.size() / writer_grain_bytes;
        if (first + count > entries_.size()) return fail(Errc::internal, "monolithicSparse writer got data past the end of the disk");
        if (next_sector_ + count * writer_grain_sectors > 0xffffffffULL)
            return fail(Errc::no_space, "monolithicSparse output exceeds the 2 TiB a sparse extent can address");
        for (std::uint64_t i = 0; i < count; ++i)
            entries_[static_cast<std::size_t>(first + i)] = static_cast<std::uint32_t>(next_sector_ + i * writer_grain_sectors);
        HSDK_TRYV(file_->write_behind(next_sector_ * sector_size, data));
        next_sector_ += count * writer_grain_sectors;
        return success();
    }

    Result<void> finish() override {
        // The file reaches at least the first grain, even when no grain was written (qemu checks).
        HSDK_TRYV(file_->truncate(next_sector_ * sector_size));
        std::vector<std::byte> head(static_cast<std::size_t>(header_.rgd_offset * sector_size), std::byte{0});
        encode_sparse_header(header_, std::span<std::byte, 512>(head.data(), 512));
        std::memcpy(head.data() + header_.descriptor_offset * sector_size, descriptor_.data(), descriptor_.size());
        HSDK_TRYV(file_->write_all(0, head));
        HSDK_TRYV(write_tables(header_.rgd_offset));
        return write_tables(header_.gd_offset);
    }

private:
    // A directory at `gd_sector`, its tables right behind it.
    Result<void> write_tables(std::uint64_t gd_sector) {
        const std::uint64_t gd_sectors = round_up(tables_ * 4, sector_size) / sector_size;
        const std::uint64_t first_table = gd_sector + gd_sectors;
        std::vector<std::byte> gd(static_cast<std::size_t>(gd_sectors * sector_size));
        for (std::uint64_t i = 0; i < tables_; ++i)
            store_le(gd.data() + i * 4, static_cast<std::uint32_t>(first_table + i * hosted_table_sectors));
        HSDK_TRYV(file_->write_all(gd_sector * sector_size, gd));
        // Tables in chunks of 2048 (4 MiB), straight from the entry array.
        constexpr std::uint64_t chunk_tables = 2048;
        std::vector<std::byte> buf;
        for (std::uint64_t t = 0; t < tables_; t += chunk_tables) {
            const std::uint64_t n = std::min(chunk_tables, tables_ - t);
            buf.assign(static_cast<std::size_t>(n * hosted_table_sectors * sector_size), std::byte{0});
            const std::uint64_t first_entry = t * hosted_gtes_per_gt;
            const std::uint64_t last_entry = std::min<std::uint64_t>(entries_.size(), (t + n) * hosted_gtes_per_gt);
            for (std::uint64_t e = first_entry; e < last_entry; ++e)
                store_le(buf.data() + (e - first_entry) * 4, entries_[static_cast<std::size_t>(e)]);
            HSDK_TRYV(file_->write_all((first_table + t * hosted_table_sectors) * sector_size, buf));
        }
        return success();
    }

    io::File *file_;
    SparseHeader header_;
    std::string descriptor_;
    std::uint64_t tables_;
    std::vector<std::uint32_t> entries_;  // sector of each grain, 0 = unallocated
    std::uint64_t next_sector_;
};

}  // namespace

Result<std::unique_ptr<DiskWriter>> create_monolithic_sparse(const CreateRequest &req, const WriterSettings &settings) {
    HSDK_TRY(auto line, extent_line("SPARSE", settings.capacity_sectors, io::base_name(req.path), false));
    const std::string descriptor = render_descriptor(settings, "monolithicSparse", {line});
    const std::uint64_t grains = (settings.capacity_sectors + writer_grain_sectors - 1) / writer_grain_sectors;
    const std::uint64_t tables = (grains + hosted_gtes_per_gt - 1) / hosted_gtes_per_gt;
    const std::uint64_t gd_sectors = round_up(tables * 4, sector_size) / sector_size;
    SparseHeader h;
    h.version = 1;
    h.flags = flag_newline_detect | flag_redundant_gt;
    h.capacity = settings.capacity_sectors;
    h.grain_size = writer_grain_sectors;
    h.descriptor_offset = 1;
    h.descriptor_size = std::max<std::uint64_t>(20, round_up(descriptor.size(), sector_size) / sector_size);
    h.gtes_per_gt = hosted_gtes_per_gt;
    h.rgd_offset = h.descriptor_offset + h.descriptor_size;
    h.gd_offset = h.rgd_offset + gd_sectors + tables * hosted_table_sectors;
    h.overhead = round_up(h.gd_offset + gd_sectors + tables * hosted_table_sectors, writer_grain_sectors);
    h.compress_algorithm = compression_none;
    HSDK_TRY(auto *file, req.outputs->add(req.path));
    return std::unique_ptr<DiskWriter>(new MonolithicSparseWriter(file, h, descriptor, grains, tables));
}

}  // namespace hypersdk::format::vmdk
