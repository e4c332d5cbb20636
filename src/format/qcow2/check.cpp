// qemu-img check for qcow2, read-only: rebuild every host cluster's refcount from the metadata
// (header, L1/L2 tables of the active image and of every internal snapshot, compressed spans,
// snapshot table, refcount table and blocks, persistent bitmaps), compare it with the stored
// refcounts, and verify the OFLAG_COPIED flags of the active tables.
#include "format/qcow2/image.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace hypersdk::format::qcow2 {
namespace {

constexpr std::uint64_t max_checked_clusters = 128ULL << 20;  // 256 MiB of 16-bit counters
constexpr std::size_t max_beyond_eof_entries = 1 << 20;
constexpr std::uint64_t work_budget = 1ULL << 33;  // cluster visits, so a hostile image cannot spin forever
constexpr std::size_t refblock_cache_blocks = 8;
constexpr std::uint64_t bitmap_entry_offset_mask = 0x00fffffffffffe00ULL;

// Refcounts as the image stores them.
class StoredRefcounts {
public:
    StoredRefcounts(const Image &img, std::vector<std::uint64_t> table) : img_(img), table_(std::move(table)) {}

    [[nodiscard]] const std::vector<std::uint64_t> &table() const noexcept { return table_; }

    // nullopt when the refcount block holding it cannot be read (unaligned offset).
    Result<std::optional<std::uint64_t>> get(std::uint64_t cluster) {
        const Header &h = img_.header;
        const std::uint64_t per_block = h.refcount_block_entries();
        const std::uint64_t index = cluster / per_block;
        if (index >= table_.size()) return std::optional<std::uint64_t>(0);
        const std::uint64_t offset = table_[index] & refcount_table_offset_mask;
        if (offset == 0) return std::optional<std::uint64_t>(0);
        if (offset & (h.cluster_size() - 1)) return std::optional<std::uint64_t>();
        HSDK_TRY(const std::vector<std::byte> *block, load(index, offset));
        return std::optional<std::uint64_t>(decode(*block, cluster % per_block));
    }

private:
    Result<const std::vector<std::byte> *> load(std::uint64_t index, std::uint64_t offset) {
        if (auto it = blocks_.find(index); it != blocks_.end()) return &it->second;
        if (blocks_.size() >= refblock_cache_blocks) {
            blocks_.erase(order_.front());
            order_.erase(order_.begin());
        }
        const std::uint64_t cs = img_.header.cluster_size();
        std::vector<std::byte> block(static_cast<std::size_t>(cs));  // zeros where the file ends, as qemu reads it
        if (offset < img_.file_size) {
            const auto n = static_cast<std::size_t>(std::min(cs, img_.file_size - offset));
            HSDK_TRYV(img_.file.read_exact(offset, std::span(block).first(n)));
        }
        order_.push_back(index);
        return &blocks_.emplace(index, std::move(block)).first->second;
    }

    std::uint64_t decode(const std::vector<std::byte> &b, std::uint64_t i) const {
        const unsigned order = img_.header.refcount_order;
        const auto *p = reinterpret_cast<const std::uint8_t *>(b.data());
        switch (order) {
        case 0: return (p[i / 8] >> (i % 8)) & 1;
        case 1: return (p[i / 4] >> (2 * (i % 4))) & 3;
        case 2: return (p[i / 2] >> (4 * (i % 2))) & 15;
        case 3: return p[i];
        case 4: return be16(b.data(), static_cast<std::size_t>(i * 2));
        case 5: return be32(b.data(), static_cast<std::size_t>(i * 4));
        default: return be64(b.data(), static_cast<std::size_t>(i * 8));
        }
    }

    const Image &img_;
    std::vector<std::uint64_t> table_;
    std::unordered_map<std::uint64_t, std::vector<std::byte>> blocks_;
    std::vector<std::uint64_t> order_;
};

class Checker {
public:
    Checker(const Image &img, StoredRefcounts stored, std::uint64_t nb_clusters)
        : img_(img), h_(img.header), cs_(img.header.cluster_size()), stored_(std::move(stored)), nb_(nb_clusters),
          counts_(static_cast<std::size_t>(nb_clusters), 0) {
        report_.format = "qcow2";
    }

    Result<CheckReport> run() {
        const std::uint64_t visible = h_.size / 512 * 512;
        report_.total_clusters = visible / cs_ + (visible % cs_ != 0);

        HSDK_TRYV(inc(0, cs_));  // header
        HSDK_TRYV(walk_l1(img_.l1, h_.l1_table_offset, true));
        HSDK_TRYV(walk_snapshots());
        HSDK_TRYV(inc(h_.refcount_table_offset, static_cast<std::uint64_t>(h_.refcount_table_clusters) * cs_));
        HSDK_TRYV(walk_bitmaps());
        HSDK_TRYV(check_refblocks());
        HSDK_TRYV(compare());
        // The last cluster may be partly written; the offset never claims more than the file holds.
        report_.image_end_offset = std::min((highest_ + 1) * cs_, img_.file_size);
        return report_;
    }

private:
    void error(std::string msg) { report_.add_corruption(std::move(msg)); }
    void leak(std::string msg) { report_.add_leak(std::move(msg)); }

    Result<void> spend(std::uint64_t n) {
        work_ += n;
        if (work_ > work_budget)
            return fail_unsupported("qcow2 check stopped: the metadata references more clusters than can be checked");
        return success();
    }

    void add(std::uint64_t cluster) {
        if (cluster >= nb_) {
            auto it = beyond_.find(cluster);
            if (it != beyond_.end())
                ++it->second;
            else if (beyond_.size() < max_beyond_eof_entries)
                beyond_.emplace(cluster, 1);
            else
                error(fmt::format("ERROR cluster {} lies beyond the end of the file", cluster));
            return;
        }
        auto &c = counts_[static_cast<std::size_t>(cluster)];
        if (c < 0xfffe) {
            ++c;
        } else if (c == 0xfffe) {
            c = 0xffff;
            big_[cluster] = 0xffff;
        } else {
            ++big_[cluster];
        }
    }

    std::uint64_t computed(std::uint64_t cluster) const {
        const auto c = counts_[static_cast<std::size_t>(cluster)];
        return c == 0xffff ? big_.at(cluster) : c;
    }

    // One more reference to every cluster [offset, offset + size) touches. A region that reaches a
    // cluster or more past the end of the file (a truncated image) is a corruption and is not
    // counted, as qemu-img check does; the last cluster may be partly written.
    Result<void> inc(std::uint64_t offset, std::uint64_t size) {
        if (size == 0) return success();
        const std::uint64_t end = size > UINT64_MAX - offset ? UINT64_MAX : offset + size;
        if (end > img_.file_size && end - img_.file_size >= cs_) {
            error(fmt::format("ERROR: counting reference for region exceeding the end of the file by one cluster or more: "
                              "offset {:#x} size {:#x}",
                              offset, size));
            return success();
        }
        const std::uint64_t first = offset >> h_.cluster_bits;
        const std::uint64_t last_byte = size - 1 > UINT64_MAX - offset ? UINT64_MAX : offset + size - 1;
        const std::uint64_t last = last_byte >> h_.cluster_bits;
        HSDK_TRYV(spend(last - first + 1));
        for (std::uint64_t k = first; k <= last; ++k) add(k);
        return success();
    }

    Result<std::optional<std::uint64_t>> stored(std::uint64_t cluster) { return stored_.get(cluster); }

    Result<void> walk_l1(const std::vector<std::uint64_t> &l1, std::uint64_t l1_offset, bool active) {
        HSDK_TRYV(inc(l1_offset, l1.size() * 8));
        std::vector<std::byte> raw(static_cast<std::size_t>(cs_));
        for (std::size_t i = 0; i < l1.size(); ++i) {
            const std::uint64_t l2 = l1[i] & entry_offset_mask;
            if (l2 == 0) continue;
            if (active) {
                HSDK_TRY(auto rc, stored(l2 >> h_.cluster_bits));
                if (rc && (*rc == 1) != ((l1[i] & oflag_copied) != 0))
                    error(fmt::format("ERROR OFLAG_COPIED L2 cluster: l1_index={} l1_entry={:x} refcount={}", i, l1[i], *rc));
            }
            HSDK_TRYV(inc(l2, cs_));
            if (l2 & (cs_ - 1)) {
                error(fmt::format("ERROR l2_offset={:x}: Table is not cluster aligned; L1 entry corrupted", l2));
                continue;
            }
            if (l2 >= img_.file_size || cs_ > img_.file_size - l2) {
                error(fmt::format("ERROR l2_offset={:x}: L2 table lies beyond the end of the file (L1 index {})", l2, i));
                continue;
            }
            HSDK_TRYV(img_.file.read_exact(l2, raw));
            HSDK_TRYV(walk_l2(raw, active));
        }
        return success();
    }

    Result<void> walk_l2(const std::vector<std::byte> &raw, bool active) {
        const std::uint64_t n = h_.l2_entries();
        HSDK_TRYV(spend(n));
        const bool ext = h_.extended_l2();
        for (std::uint64_t j = 0; j < n; ++j) {
            const std::uint64_t entry = be64(raw.data(), static_cast<std::size_t>(j * h_.l2_entry_bytes()));
            const std::uint64_t bitmap = ext ? be64(raw.data(), static_cast<std::size_t>(j * 16 + 8)) : 0;
            const ClusterKind kind = classify_entry(h_, entry);
            const std::uint64_t host = entry & entry_offset_mask;
            if (kind == ClusterKind::compressed) {
                if (entry & oflag_copied)
                    error(fmt::format("ERROR: cluster {}: copied flag must never be set for compressed clusters",
                                      entry >> h_.cluster_bits));
                if (bitmap != 0)
                    error(fmt::format("ERROR compressed cluster {} with non-zero subcluster allocation bitmap",
                                      entry >> h_.cluster_bits));
                if (img_.data_file) error("ERROR compressed cluster in an image with an external data file");
                const CompressedRef c = decode_compressed(h_, entry & ~oflag_copied);
                HSDK_TRYV(inc(c.offset, c.size));
                if (active) ++report_.allocated_clusters;
                continue;
            }
            if (kind == ClusterKind::unallocated || (kind == ClusterKind::zero && host == 0)) {
                if (ext && (bitmap & 0xffffffffULL))
                    error(fmt::format("ERROR: Unallocated cluster (L2 entry {:x}) has non-zero subcluster allocation map", entry));
                continue;
            }
            // A standard cluster, or a zero cluster with a preallocated host cluster.
            if (active) ++report_.allocated_clusters;
            if (ext && ((bitmap >> 32) & bitmap))
                error(fmt::format("ERROR offset={:x}: Allocated cluster has corrupted subcluster allocation bitmap", host));
            if (host & (cs_ - 1))
                error(fmt::format("ERROR offset={:x}: Cluster is not properly aligned; L2 entry corrupted.", host));
            if (!img_.data_file) HSDK_TRYV(inc(host, cs_));  // clusters of a data file are not refcounted
            if (active) {
                std::optional<std::uint64_t> rc = 1;
                if (!img_.data_file) {
                    HSDK_TRY(rc, stored(host >> h_.cluster_bits));
                }
                if (rc && (*rc == 1) != ((entry & oflag_copied) != 0))
                    error(fmt::format("ERROR OFLAG_COPIED data cluster: l2_entry={:x} refcount={}", entry, *rc));
            }
        }
        return success();
    }

    Result<void> walk_snapshots() {
        for (const auto &s : img_.snapshots.snapshots) {
            const std::uint64_t bytes = static_cast<std::uint64_t>(s.l1_size) * 8;
            if (s.l1_table_offset & (cs_ - 1)) {
                error(fmt::format("ERROR snapshot '{}' L1 table offset {:#x} is not cluster aligned", s.id, s.l1_table_offset));
                continue;
            }
            if (s.l1_table_offset > img_.file_size || bytes > img_.file_size - s.l1_table_offset) {
                error(fmt::format("ERROR snapshot '{}' L1 table at offset {:#x} lies beyond the end of the file", s.id,
                                  s.l1_table_offset));
                continue;
            }
            std::vector<std::byte> raw(static_cast<std::size_t>(bytes));
            HSDK_TRYV(img_.file.read_exact(s.l1_table_offset, raw));
            std::vector<std::uint64_t> l1(s.l1_size);
            for (std::size_t i = 0; i < l1.size(); ++i) l1[i] = be64(raw.data(), i * 8);
            HSDK_TRYV(walk_l1(l1, s.l1_table_offset, false));
        }
        return inc(h_.snapshots_offset, img_.snapshots.byte_size);
    }

    Result<void> walk_bitmaps() {
        if (!h_.bitmaps) return success();
        HSDK_TRYV(inc(h_.bitmaps->directory_offset, h_.bitmaps->directory_size));
        for (const auto &b : img_.bitmaps) {
            const std::uint64_t bytes = static_cast<std::uint64_t>(b.table_size) * 8;
            HSDK_TRYV(inc(b.table_offset, bytes));
            if ((b.table_offset & (cs_ - 1)) || b.table_offset > img_.file_size || bytes > img_.file_size - b.table_offset) {
                error(fmt::format("ERROR bitmap '{}' table at offset {:#x} is unaligned or beyond the end of the file", b.name,
                                  b.table_offset));
                continue;
            }
            std::vector<std::byte> raw(static_cast<std::size_t>(bytes));
            HSDK_TRYV(img_.file.read_exact(b.table_offset, raw));
            for (std::size_t i = 0; i < b.table_size; ++i) {
                const std::uint64_t off = be64(raw.data(), i * 8) & bitmap_entry_offset_mask;
                if (off) HSDK_TRYV(inc(off, cs_));
            }
        }
        return success();
    }

    Result<void> check_refblocks() {
        const auto &table = stored_.table();
        for (std::size_t i = 0; i < table.size(); ++i) {
            const std::uint64_t offset = table[i] & refcount_table_offset_mask;
            const std::uint64_t cluster = offset >> h_.cluster_bits;
            if (offset & (cs_ - 1)) {
                error(fmt::format("ERROR refcount block {} is not cluster aligned; refcount table entry corrupted", i));
                continue;
            }
            if (cluster >= nb_) {
                error(fmt::format("ERROR refcount block {} is outside image", i));
                continue;
            }
            if (offset == 0) continue;
            HSDK_TRYV(inc(offset, cs_));
            if (const auto c = computed(cluster); c != 1)
                error(fmt::format("ERROR refcount block {} refcount={}", i, c));
        }
        return success();
    }

    Result<void> compare_one(std::uint64_t cluster, std::uint64_t reference, std::uint64_t &unreadable_block) {
        HSDK_TRY(auto rc, stored(cluster));
        if (!rc) {
            ++report_.check_errors;
            const std::uint64_t block = cluster / h_.refcount_block_entries();
            if (block != unreadable_block) report_.add_note(fmt::format("Can't get refcount for clusters of refcount block {}", block));
            unreadable_block = block;
            if (reference > 0) highest_ = std::max(highest_, cluster);
            return success();
        }
        if (*rc > 0 || reference > 0) highest_ = std::max(highest_, cluster);
        if (*rc < reference)
            error(fmt::format("ERROR cluster {} refcount={} reference={}", cluster, *rc, reference));
        else if (*rc > reference)
            leak(fmt::format("Leaked cluster {} refcount={} reference={}", cluster, *rc, reference));
        return success();
    }

    Result<void> compare() {
        std::uint64_t unreadable_block = UINT64_MAX;
        for (std::uint64_t k = 0; k < nb_; ++k) HSDK_TRYV(compare_one(k, computed(k), unreadable_block));
        for (const auto &[k, c] : beyond_) HSDK_TRYV(compare_one(k, c, unreadable_block));
        return success();
    }

    const Image &img_;
    const Header &h_;
    const std::uint64_t cs_;
    StoredRefcounts stored_;
    const std::uint64_t nb_;
    std::vector<std::uint16_t> counts_;
    std::unordered_map<std::uint64_t, std::uint64_t> big_;
    std::map<std::uint64_t, std::uint64_t> beyond_;
    std::uint64_t highest_ = 0;
    std::uint64_t work_ = 0;
    CheckReport report_;
};

}  // namespace

Result<CheckReport> check_refcounts(const Image &img) {
    const Header &h = img.header;
    const std::uint64_t cs = h.cluster_size();
    const std::uint64_t nb = img.file_size / cs + (img.file_size % cs != 0);
    if (nb > max_checked_clusters)
        return fail_unsupported(fmt::format("checking a qcow2 file of {} clusters needs more memory than the check allows", nb));
    // read_header checked that the refcount table lies inside the file and is at most 8 MiB.
    const std::uint64_t entries = h.refcount_table_entries();
    std::vector<std::byte> raw(static_cast<std::size_t>(entries * 8));
    HSDK_TRYV(img.file.read_exact(h.refcount_table_offset, raw));
    std::vector<std::uint64_t> table(static_cast<std::size_t>(entries));
    for (std::size_t i = 0; i < table.size(); ++i) table[i] = be64(raw.data(), i * 8);
    Checker checker(img, StoredRefcounts(img, std::move(table)), nb);
    return checker.run();
}

}  // namespace hypersdk::format::qcow2
