// Reading qcow2: opening (header, L1, snapshots, external data file), the allocation map and data.
#include "format/qcow2/image.hpp"
#include "format/qcow2/l2_cache.hpp"
#include "format/qcow2/qcow2.hpp"

#include "core/codec.hpp"
#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::qcow2 {
namespace {

constexpr std::uint64_t l2_cache_budget = 32ULL << 20;     // bytes of decoded L2 tables kept
constexpr std::uint64_t compressed_batch_limit = 8ULL << 20;  // one pread for neighbouring compressed clusters
constexpr std::uint64_t compressed_batch_gap = 4096;          // bytes of slack tolerated between them

// One guest range of uniform mapping.
struct Piece {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    ClusterKind kind = ClusterKind::unallocated;
    std::uint64_t host = 0;          // normal: host offset of `offset`
    std::uint64_t cluster_start = 0;  // compressed: guest offset of the whole cluster
    CompressedRef compressed;
};

Piece make_piece(std::uint64_t offset, std::uint64_t length, ClusterKind kind) {
    Piece p;
    p.offset = offset;
    p.length = length;
    p.kind = kind;
    return p;
}

struct CompressedPiece {
    Piece piece;
    std::size_t buf_offset = 0;
};

class Qcow2Layer final : public Layer {
public:
    explicit Qcow2Layer(Image image)
        : img_(std::move(image)),
          cache_(static_cast<std::size_t>(std::max<std::uint64_t>(8, l2_cache_budget / img_.header.cluster_size()))) {}

    std::uint64_t virtual_size() const noexcept override { return img_.header.size; }

    Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        return map_range(offset, length, [&](const Piece &p) -> Result<void> {
            Extent e{p.offset, p.length, ExtentKind::hole};
            switch (p.kind) {
            case ClusterKind::unallocated: break;
            case ClusterKind::zero: e.kind = ExtentKind::zero; break;
            case ClusterKind::normal:
                e.kind = ExtentKind::data;
                e.host_offset = p.host;
                break;
            case ClusterKind::compressed: e.kind = ExtentKind::data; break;
            }
            append_extent(out, e);
            return success();
        });
    }

    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override {
        if (offset > virtual_size() || buf.size() > virtual_size() - offset)
            return fail(Errc::invalid_argument, fmt::format("read of {} bytes at {:#x} lies beyond the end of the disk", buf.size(), offset));
        // Neighbouring plain clusters with neighbouring host offsets become one pread; neighbouring
        // compressed clusters (qemu writes them back to back) are fetched with one pread too.
        struct Pending {
            std::uint64_t host = 0;
            std::size_t buf_offset = 0;
            std::size_t length = 0;
        } pending;
        auto flush_plain = [&]() -> Result<void> {
            if (pending.length == 0) return success();
            auto r = img_.guest_file().read_exact(pending.host, buf.subspan(pending.buf_offset, pending.length));
            pending.length = 0;
            if (!r && r.error().code == Errc::corrupt_image)
                return fail_corrupt(fmt::format("data cluster at offset {:#x} runs past the end of {}", pending.host,
                                                img_.data_file ? "the external data file" : "the file"));
            return r;
        };
        std::vector<CompressedPiece> group;
        std::uint64_t group_begin = 0, group_end = 0;
        auto flush_compressed = [&]() -> Result<void> {
            if (group.empty()) return success();
            auto r = read_compressed_group(group, group_begin, group_end, buf);
            group.clear();
            return r;
        };
        auto mapped = map_range(offset, buf.size(), [&](const Piece &p) -> Result<void> {
            const auto at = static_cast<std::size_t>(p.offset - offset);
            const auto len = static_cast<std::size_t>(p.length);
            switch (p.kind) {
            case ClusterKind::unallocated:
            case ClusterKind::zero: std::memset(buf.data() + at, 0, len); return success();
            case ClusterKind::normal:
                if (pending.length != 0 && pending.host + pending.length == p.host && pending.buf_offset + pending.length == at) {
                    pending.length += len;
                    return success();
                }
                HSDK_TRYV(flush_plain());
                pending = Pending{p.host, at, len};
                return success();
            case ClusterKind::compressed: {
                const std::uint64_t b = p.compressed.offset, e = b + p.compressed.size;
                if (!group.empty() && !(b >= group_begin && b <= group_end + compressed_batch_gap && e - group_begin <= compressed_batch_limit))
                    HSDK_TRYV(flush_compressed());
                if (group.empty()) group_begin = group_end = b;
                group_end = std::max(group_end, e);
                group.push_back(CompressedPiece{p, at});
                return success();
            }
            }
            return success();
        });
        if (!mapped) return mapped;
        HSDK_TRYV(flush_plain());
        return flush_compressed();
    }

    std::optional<BackingRef> backing() const override {
        if (img_.header.backing_file.empty()) return std::nullopt;
        return BackingRef{img_.header.backing_file, img_.header.backing_format};
    }

    ImageInfo info() const override {
        const Header &h = img_.header;
        ImageInfo i;
        i.format = "qcow2";
        i.virtual_size = h.size;
        if (auto a = img_.file.allocated_size()) i.actual_size = a.value();
        if (img_.data_file)
            if (auto a = img_.data_file->allocated_size()) i.actual_size += a.value();
        i.cluster_size = h.cluster_size();
        i.backing_filename = h.backing_file;
        i.backing_format = h.backing_format;
        i.dirty = (h.incompatible & incompat_dirty) != 0;
        i.files = {img_.file.path()};
        if (img_.data_file) i.files.push_back(img_.data_file_path);
        auto &j = i.format_specific;
        j["compat"] = h.version == 2 ? "0.10" : "1.1";
        j["compression-type"] = h.compression == CompressionType::zstd ? "zstd" : "zlib";
        j["lazy-refcounts"] = (h.compatible & compat_lazy_refcounts) != 0;
        j["refcount-bits"] = 1u << h.refcount_order;
        j["corrupt"] = (h.incompatible & incompat_corrupt) != 0;
        j["extended-l2"] = h.extended_l2();
        if (h.has_data_file()) {
            j["data-file"] = h.data_file;
            j["data-file-raw"] = h.data_file_raw();
        }
        auto snaps = nlohmann::json::array();
        for (const auto &s : img_.snapshots.snapshots) {
            nlohmann::json sj{{"id", s.id},
                              {"name", s.name},
                              {"vm-state-size", s.vm_state_size},
                              {"date-sec", s.date_sec},
                              {"date-nsec", s.date_nsec},
                              {"vm-clock-nsec", s.vm_clock_nsec}};
            if (s.disk_size) sj["disk-size"] = *s.disk_size;
            if (s.icount && *s.icount >= 0) sj["icount"] = *s.icount;
            snaps.push_back(std::move(sj));
        }
        if (!snaps.empty()) j["snapshots"] = std::move(snaps);  // like qemu, only when there are some
        if (!img_.bitmaps.empty()) {
            auto bitmaps = nlohmann::json::array();
            for (const auto &b : img_.bitmaps) {
                auto flags = nlohmann::json::array();
                if (b.flags & 1) flags.push_back("in-use");
                if (b.flags & 2) flags.push_back("auto");
                bitmaps.push_back({{"name", b.name}, {"granularity", 1ULL << std::min<unsigned>(b.granularity_bits, 63)}, {"flags", flags}});
            }
            j["bitmaps"] = std::move(bitmaps);
        }
        return i;
    }

    Result<CheckReport> check() override { return check_refcounts(img_); }

private:
    Result<L2Cache::Table> l2_table(std::uint64_t l2_offset, std::uint64_t l1_index) {
        if (auto t = cache_.find(l2_offset)) return t;
        const Header &h = img_.header;
        const std::uint64_t cs = h.cluster_size();
        if (l2_offset & (cs - 1))
            return fail_corrupt(fmt::format("L2 table offset {:#x} unaligned (L1 index {})", l2_offset, l1_index));
        if (l2_offset > img_.file_size || cs > img_.file_size - l2_offset)
            return fail_corrupt(fmt::format("L2 table beyond end of file (offset {:#x}, L1 index {})", l2_offset, l1_index));
        std::vector<std::byte> raw(static_cast<std::size_t>(cs));
        HSDK_TRYV(img_.file.read_exact(l2_offset, raw));
        auto table = std::make_shared<std::vector<std::uint64_t>>(static_cast<std::size_t>(cs / 8));
        for (std::size_t i = 0; i < table->size(); ++i) (*table)[i] = be64(raw.data(), i * 8);
        L2Cache::Table shared = std::move(table);
        cache_.insert(l2_offset, shared);
        return shared;
    }

    // Calls emit(Piece) for consecutive ranges covering [offset, offset + length).
    template <class Emit>
    Result<void> map_range(std::uint64_t offset, std::uint64_t length, Emit &&emit) {
        const Header &h = img_.header;
        const unsigned cb = h.cluster_bits;
        const std::uint64_t cs = h.cluster_size();
        const unsigned span_bits = cb + h.l2_bits();
        const std::uint64_t end = offset + length;
        std::uint64_t pos = offset;
        while (pos < end) {
            const std::uint64_t l1_index = pos >> span_bits;
            const std::uint64_t span_end = std::min(end, (l1_index + 1) << span_bits);
            const std::uint64_t l2_offset = l1_index < img_.l1.size() ? img_.l1[l1_index] & entry_offset_mask : 0;
            if (l2_offset == 0) {
                HSDK_TRYV(emit(make_piece(pos, span_end - pos, ClusterKind::unallocated)));
                pos = span_end;
                continue;
            }
            HSDK_TRY(auto table, l2_table(l2_offset, l1_index));
            while (pos < span_end) {
                const std::uint64_t cluster_start = pos & ~(cs - 1);
                const std::uint64_t cluster_end = std::min(span_end, cluster_start + cs);
                const std::uint64_t index = (pos >> cb) & (h.l2_entries() - 1);
                const std::uint64_t entry = h.extended_l2() ? (*table)[index * 2] : (*table)[index];
                const std::uint64_t bitmap = h.extended_l2() ? (*table)[index * 2 + 1] : 0;
                HSDK_TRYV(map_cluster(entry, bitmap, cluster_start, pos, cluster_end, l2_offset, index, emit));
                pos = cluster_end;
            }
        }
        return success();
    }

    template <class Emit>
    Result<void> map_cluster(std::uint64_t entry, std::uint64_t bitmap, std::uint64_t cluster_start, std::uint64_t pos,
                             std::uint64_t end, std::uint64_t l2_offset, std::uint64_t index, Emit &emit) {
        const Header &h = img_.header;
        const std::uint64_t cs = h.cluster_size();
        const ClusterKind kind = classify_entry(h, entry);
        if (kind == ClusterKind::compressed) {
            if (bitmap != 0)
                return fail_corrupt(fmt::format("compressed cluster at guest offset {:#x} has a subcluster bitmap (L2 table {:#x}, index {})",
                                                cluster_start, l2_offset, index));
            if (img_.data_file)
                return fail_corrupt(fmt::format("compressed cluster at guest offset {:#x} in an image with an external data file",
                                                cluster_start));
            Piece p = make_piece(pos, end - pos, ClusterKind::compressed);
            p.cluster_start = cluster_start;
            p.compressed = decode_compressed(h, entry);
            if (p.compressed.offset >= img_.file_size)
                return fail_corrupt(fmt::format("compressed cluster beyond end of file (offset {:#x}, guest offset {:#x})",
                                                p.compressed.offset, cluster_start));
            return emit(p);
        }
        const std::uint64_t host = entry & entry_offset_mask;
        if (kind == ClusterKind::normal) {
            if (host & (cs - 1))
                return fail_corrupt(fmt::format("data cluster offset {:#x} unaligned (L2 table {:#x}, index {})", host, l2_offset, index));
            if (host >= img_.guest_file_size())
                return fail_corrupt(fmt::format("data cluster beyond end of {} (offset {:#x}, guest offset {:#x})",
                                                img_.data_file ? "the external data file" : "file", host, cluster_start));
        }
        if (!h.extended_l2()) {
            Piece p = make_piece(pos, end - pos, kind);
            if (kind == ClusterKind::normal) p.host = host + (pos - cluster_start);
            return emit(p);
        }
        const auto alloc = static_cast<std::uint32_t>(bitmap), zeros = static_cast<std::uint32_t>(bitmap >> 32);
        if (alloc & zeros)
            return fail_corrupt(fmt::format("subclusters both allocated and zero at guest offset {:#x} (L2 table {:#x}, index {})",
                                            cluster_start, l2_offset, index));
        if (kind == ClusterKind::unallocated && alloc != 0)
            return fail_corrupt(fmt::format("unallocated cluster with allocated subclusters at guest offset {:#x} (L2 table {:#x}, index {})",
                                            cluster_start, l2_offset, index));
        const std::uint64_t scs = h.subcluster_size();
        auto status = [&](std::uint64_t sc) {
            if (alloc & (1u << sc)) return ClusterKind::normal;
            if (zeros & (1u << sc)) return ClusterKind::zero;
            return ClusterKind::unallocated;
        };
        while (pos < end) {
            std::uint64_t sc = (pos - cluster_start) / scs;
            const ClusterKind k = status(sc);
            while (sc + 1 < subclusters_per_cluster && cluster_start + (sc + 1) * scs < end && status(sc + 1) == k) ++sc;
            const std::uint64_t stop = std::min(end, cluster_start + (sc + 1) * scs);
            Piece p = make_piece(pos, stop - pos, k);
            if (k == ClusterKind::normal) p.host = host + (pos - cluster_start);
            HSDK_TRYV(emit(p));
            pos = stop;
        }
        return success();
    }

    Result<void> read_compressed_group(const std::vector<CompressedPiece> &group, std::uint64_t begin, std::uint64_t end,
                                       std::span<std::byte> buf) {
        const Header &h = img_.header;
        const auto cs = static_cast<std::size_t>(h.cluster_size());
        const auto kind = h.compression == CompressionType::zstd ? core::codec::Kind::zstd : core::codec::Kind::deflate_raw;
        // The last compressed cluster of a file may end inside its final sector: read what exists.
        end = std::min(end, img_.file_size);
        thread_local std::vector<std::byte> packed, cluster;
        packed.resize(static_cast<std::size_t>(end - begin));
        HSDK_TRYV(img_.file.read_exact(begin, packed));
        for (const auto &cp : group) {
            const Piece &p = cp.piece;
            const std::uint64_t stream_end = std::min(p.compressed.offset + p.compressed.size, end);
            auto in = std::span<const std::byte>(packed).subspan(static_cast<std::size_t>(p.compressed.offset - begin),
                                                                 static_cast<std::size_t>(stream_end - p.compressed.offset));
            const std::string what = fmt::format("compressed cluster at offset {:#x}", p.compressed.offset);
            if (p.offset == p.cluster_start && p.length == cs) {
                HSDK_TRYV(core::codec::decompress_exact(kind, in, buf.subspan(cp.buf_offset, cs), what));
                continue;
            }
            cluster.resize(cs);
            HSDK_TRYV(core::codec::decompress_exact(kind, in, cluster, what));
            std::memcpy(buf.data() + cp.buf_offset, cluster.data() + (p.offset - p.cluster_start), static_cast<std::size_t>(p.length));
        }
        return success();
    }

    Image img_;
    L2Cache cache_;
};

}  // namespace

int probe(std::span<const std::byte> head, std::uint64_t) {
    if (head.size() < 8 || be32(head.data(), 0) != header_magic) return 0;
    const std::uint32_t version = be32(head.data(), 4);
    return version == 2 || version == 3 ? 100 : 60;  // other versions: ours to refuse with a clear message
}

Result<std::unique_ptr<Layer>> open(OpenRequest req) {
    Image img;
    img.path = req.path;
    img.file_size = req.file_size;
    HSDK_TRY(img.header, read_header(req.file, req.file_size));
    const Header &h = img.header;

    // Active L1 table (read_header checked its size and bounds).
    std::vector<std::byte> raw(static_cast<std::size_t>(h.l1_size) * 8);
    HSDK_TRYV(req.file.read_exact(h.l1_table_offset, raw));
    img.l1.resize(h.l1_size);
    for (std::size_t i = 0; i < img.l1.size(); ++i) img.l1[i] = be64(raw.data(), i * 8);
    raw = {};
    // Two L1 entries sharing one L2 table never happen in a sane image; refusing them keeps the work
    // of mapping the disk proportional to the file's size.
    {
        std::vector<std::uint64_t> l2s;
        for (auto e : img.l1)
            if (e & entry_offset_mask) l2s.push_back(e & entry_offset_mask);
        std::sort(l2s.begin(), l2s.end());
        if (auto dup = std::adjacent_find(l2s.begin(), l2s.end()); dup != l2s.end())
            return fail_corrupt(fmt::format("L2 table at offset {:#x} is referenced by two L1 entries", *dup));
    }

    HSDK_TRY(img.snapshots, read_snapshot_table(req.file, req.file_size, h));
    HSDK_TRY(img.bitmaps, read_bitmap_directory(req.file, req.file_size, h));

    if (h.has_data_file()) {
        const bool allow = req.options != nullptr && req.options->allow_external_files;
        HSDK_TRY(auto df, req.file.open_reference(h.data_file, allow, "external data file"));
        img.data_file_path = df.path();
        img.data_file_size = df.size();
        img.data_file = std::make_unique<io::Source>(std::move(df));
    }
    img.file = std::move(req.file);
    return std::unique_ptr<Layer>(new Qcow2Layer(std::move(img)));
}

}  // namespace hypersdk::format::qcow2
