// streamOptimized writer: one forward pass, never seeking back, so the output can later go straight
// into a tar (OVA) or an HTTP upload.
//
//   header (version 3, compressed + markers, grain directory "at end")  | embedded descriptor | zeros
//   grain markers in ascending LBA: {u64 lba, u32 size} + zlib stream, padded to 512
//   after the grains of each 512-grain group: grain table marker + grain table
//   grain directory marker + grain directory | footer marker + footer (the header, GD filled in) | EOS
//
// Groups without data get no table (directory entry 0). Grains are compressed by encode() on the
// pipeline's workers; commit() only appends.
#include "format/vmdk/writers.hpp"

#include "core/codec.hpp"
#include "core/endian.hpp"
#include "format/vmdk/sparse_header.hpp"

#include <fmt/format.h>

#include <cstring>

namespace hypersdk::format::vmdk {
namespace {

std::uint64_t table_count(std::uint64_t capacity_sectors) {
    const std::uint64_t grains = (capacity_sectors + writer_grain_sectors - 1) / writer_grain_sectors;
    return (grains + hosted_gtes_per_gt - 1) / hosted_gtes_per_gt;
}

class StreamOptimizedWriter final : public DiskWriter {
public:
    StreamOptimizedWriter(io::File *file, const WriterSettings &settings, SparseHeader header)
        : out_(file, 0), settings_(settings), header_(header), capacity_bytes_(settings.capacity_sectors * sector_size),
          directory_(static_cast<std::size_t>(table_count(settings.capacity_sectors)), 0),
          table_(hosted_gtes_per_gt, 0) {}

    std::uint64_t granularity() const noexcept override { return writer_grain_bytes; }
    bool has_encoder() const noexcept override { return true; }

    Result<void> start(const std::string &descriptor) {
        std::array<std::byte, 512> sector{};
        encode_sparse_header(header_, sector);
        HSDK_TRYV(out_.append(sector));
        HSDK_TRYV(out_.append(std::as_bytes(std::span<const char>(descriptor))));
        return out_.append_zeros(header_.overhead * sector_size - out_.position());
    }

    Result<EncodedRun> encode(std::uint64_t offset, std::span<const std::byte> data) const override {
        EncodedRun run;
        for (std::size_t at = 0; at < data.size(); at += writer_grain_bytes) {
            const std::uint64_t lba_bytes = offset + at;
            if (lba_bytes >= capacity_bytes_) break;
            const auto n = static_cast<std::size_t>(std::min(writer_grain_bytes, capacity_bytes_ - lba_bytes));
            const auto in = data.subspan(at, n);
            const std::size_t bound = core::codec::compress_bound(core::codec::Kind::zlib, n);
            const std::size_t start = run.bytes.size();
            run.bytes.resize(start + grain_marker_head + bound);
            HSDK_TRY(auto size, core::codec::compress(core::codec::Kind::zlib, settings_.compression_level, in,
                                                std::span<std::byte>(run.bytes).subspan(start + grain_marker_head, bound)));
            store_le(run.bytes.data() + start, lba_bytes / sector_size);
            store_le(run.bytes.data() + start + 8, static_cast<std::uint32_t>(size));
            const std::size_t padded = static_cast<std::size_t>(round_up(grain_marker_head + size, sector_size));
            run.bytes.resize(start + grain_marker_head + size);
            run.bytes.resize(start + padded);  // zero padding to the sector
            run.piece_sizes.push_back(static_cast<std::uint32_t>(padded));
        }
        return run;
    }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte>, EncodedRun *encoded) override {
        if (encoded == nullptr) return fail(Errc::internal, "streamOptimized writer got a run without encoding");
        std::size_t at = 0;
        for (std::size_t i = 0; i < encoded->piece_sizes.size(); ++i) {
            const std::uint64_t grain = offset / writer_grain_bytes + i;
            const std::uint64_t group = grain / hosted_gtes_per_gt;
            if (group != group_) {
                HSDK_TRYV(flush_table());
                group_ = group;
            }
            const std::uint64_t sector = out_.position() / sector_size;
            if (sector > 0xffffffffULL) return fail(Errc::no_space, "streamOptimized output exceeds the 2 TiB a sparse extent can address");
            table_[grain % hosted_gtes_per_gt] = static_cast<std::uint32_t>(sector);
            table_used_ = true;
            const std::size_t n = encoded->piece_sizes[i];
            HSDK_TRYV(out_.append(std::span<const std::byte>(encoded->bytes).subspan(at, n)));
            at += n;
        }
        return success();
    }

    Result<void> finish() override {
        HSDK_TRYV(flush_table());
        std::array<std::byte, 512> marker{};
        const std::uint64_t gd_sectors = round_up(directory_.size() * 4, sector_size) / sector_size;
        encode_metadata_marker(marker, MarkerType::grain_directory, gd_sectors);
        HSDK_TRYV(out_.append(marker));
        const std::uint64_t gd_sector = out_.position() / sector_size;
        std::vector<std::byte> gd(static_cast<std::size_t>(gd_sectors * sector_size));
        for (std::size_t i = 0; i < directory_.size(); ++i) store_le(gd.data() + i * 4, directory_[i]);
        HSDK_TRYV(out_.append(gd));

        encode_metadata_marker(marker, MarkerType::footer, 1);
        HSDK_TRYV(out_.append(marker));
        SparseHeader footer = header_;
        footer.gd_offset = gd_sector;
        std::array<std::byte, 512> sector{};
        encode_sparse_header(footer, sector);
        HSDK_TRYV(out_.append(sector));
        encode_metadata_marker(marker, MarkerType::end_of_stream, 0);
        HSDK_TRYV(out_.append(marker));
        return out_.flush();
    }

private:
    // Writes the table of the current group, if any of its grains was written.
    Result<void> flush_table() {
        if (!table_used_) return success();
        std::array<std::byte, 512> marker{};
        encode_metadata_marker(marker, MarkerType::grain_table, hosted_table_sectors);
        HSDK_TRYV(out_.append(marker));
        const std::uint64_t sector = out_.position() / sector_size;
        if (sector > 0xffffffffULL) return fail(Errc::no_space, "streamOptimized output exceeds the 2 TiB a sparse extent can address");
        directory_[static_cast<std::size_t>(group_)] = static_cast<std::uint32_t>(sector);
        std::vector<std::byte> gt(static_cast<std::size_t>(hosted_table_sectors * sector_size));
        for (std::size_t i = 0; i < table_.size(); ++i) store_le(gt.data() + i * 4, table_[i]);
        HSDK_TRYV(out_.append(gt));
        std::fill(table_.begin(), table_.end(), 0u);
        table_used_ = false;
        return success();
    }

    AppendWriter out_;
    WriterSettings settings_;
    SparseHeader header_;
    std::uint64_t capacity_bytes_;
    std::vector<std::uint32_t> directory_;
    std::vector<std::uint32_t> table_;
    std::uint64_t group_ = 0;
    bool table_used_ = false;
};

}  // namespace

Result<std::unique_ptr<DiskWriter>> create_stream_optimized(const CreateRequest &req, const WriterSettings &settings) {
    HSDK_TRY(auto line, extent_line("SPARSE", settings.capacity_sectors, io::base_name(req.path), false));
    const std::string descriptor = render_descriptor(settings, "streamOptimized", {line});
    SparseHeader h;
    h.version = 3;  // ESXi and cloud importers want version 3 for streams
    h.flags = flag_newline_detect | flag_compressed | flag_markers;
    h.capacity = settings.capacity_sectors;
    h.grain_size = writer_grain_sectors;
    h.descriptor_offset = 1;
    // Room to edit the descriptor in place later (VMware tools do), like qemu's 20 sectors.
    h.descriptor_size = std::max<std::uint64_t>(20, round_up(descriptor.size(), sector_size) / sector_size);
    h.gtes_per_gt = hosted_gtes_per_gt;
    h.rgd_offset = 0;
    h.gd_offset = gd_at_end;
    h.overhead = round_up(1 + h.descriptor_size, writer_grain_sectors);
    h.compress_algorithm = compression_deflate;
    HSDK_TRY(auto *file, req.outputs->add(req.path));
    auto writer = std::make_unique<StreamOptimizedWriter>(file, settings, h);
    HSDK_TRYV(writer->start(descriptor));
    return std::unique_ptr<DiskWriter>(std::move(writer));
}

}  // namespace hypersdk::format::vmdk
