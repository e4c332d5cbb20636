// Variable-length qcow2 tables: the internal snapshot table and the persistent bitmap directory.
#include "format/qcow2/qcow2_format.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::format::qcow2 {
namespace {

// Reads a table of unknown total length lazily, in growing chunks, never past `limit` bytes.
class GrowingReader {
public:
    GrowingReader(const io::Source &file, std::uint64_t base, std::uint64_t limit, std::string_view what)
        : file_(file), base_(base), limit_(limit), what_(what) {}

    Result<const std::byte *> at(std::uint64_t off, std::uint64_t n) {
        if (off > limit_ || n > limit_ - off)
            return fail_corrupt(fmt::format("{} runs past its end or the end of the file (offset {:#x})", what_, base_ + off));
        if (off + n > buf_.size()) {
            const std::uint64_t want = std::min(limit_, std::max<std::uint64_t>({off + n, buf_.size() * 2, 64 * 1024}));
            const std::size_t old = buf_.size();
            buf_.resize(static_cast<std::size_t>(want));
            HSDK_TRYV(file_.read_exact(base_ + old, std::span(buf_).subspan(old)));
        }
        return buf_.data() + off;
    }

private:
    const io::Source &file_;
    std::uint64_t base_, limit_;
    std::string_view what_;
    std::vector<std::byte> buf_;
};

std::string as_string(const std::byte *p, std::size_t n) { return std::string(reinterpret_cast<const char *>(p), n); }

}  // namespace

Result<SnapshotTable> read_snapshot_table(const io::Source &file, std::uint64_t file_size, const Header &h) {
    SnapshotTable t;
    if (h.nb_snapshots == 0) return t;
    const std::uint64_t limit = std::min(file_size - h.snapshots_offset, max_snapshot_table_bytes);
    GrowingReader r(file, h.snapshots_offset, limit, "snapshot table");
    std::uint64_t off = 0;
    t.snapshots.reserve(h.nb_snapshots);
    for (std::uint32_t i = 0; i < h.nb_snapshots; ++i) {
        HSDK_TRY(const std::byte *e, r.at(off, 40));
        Snapshot s;
        s.l1_table_offset = be64(e, 0);
        s.l1_size = be32(e, 8);
        const std::uint16_t id_len = be16(e, 12);
        const std::uint16_t name_len = be16(e, 14);
        s.date_sec = be32(e, 16);
        s.date_nsec = be32(e, 20);
        s.vm_clock_nsec = be64(e, 24);
        s.vm_state_size = be32(e, 32);
        const std::uint32_t extra = be32(e, 36);
        if (extra > max_snapshot_extra_data)
            return fail_corrupt(fmt::format("snapshot {} has {} bytes of extra data (at most {} allowed)", i, extra,
                                            max_snapshot_extra_data));
        HSDK_TRY(const std::byte *x, r.at(off + 40, extra));
        if (extra >= 8) s.vm_state_size = be64(x, 0);
        if (extra >= 16) s.disk_size = be64(x, 8);
        if (extra >= 24) s.icount = static_cast<std::int64_t>(be64(x, 16));
        HSDK_TRY(const std::byte *id, r.at(off + 40 + extra, id_len));
        s.id = as_string(id, id_len);
        HSDK_TRY(const std::byte *name, r.at(off + 40 + extra + id_len, name_len));
        s.name = as_string(name, name_len);
        if (static_cast<std::uint64_t>(s.l1_size) * 8 > max_l1_bytes)
            return fail_corrupt(fmt::format("snapshot '{}' has an L1 table of {} entries (larger than the 32 MiB limit)", s.id,
                                            s.l1_size));
        off += (40 + extra + id_len + name_len + 7) & ~std::uint64_t{7};
        t.snapshots.push_back(std::move(s));
    }
    t.byte_size = off;
    return t;
}

Result<std::vector<BitmapInfo>> read_bitmap_directory(const io::Source &file, std::uint64_t file_size, const Header &h) {
    std::vector<BitmapInfo> out;
    if (!h.bitmaps) return out;
    const auto &b = *h.bitmaps;
    (void)file_size;  // read_header checked that the directory lies inside the file
    GrowingReader r(file, b.directory_offset, b.directory_size, "bitmap directory");
    std::uint64_t off = 0;
    for (std::uint32_t i = 0; i < b.count; ++i) {
        HSDK_TRY(const std::byte *e, r.at(off, 24));
        BitmapInfo bi;
        bi.table_offset = be64(e, 0);
        bi.table_size = be32(e, 8);
        bi.flags = be32(e, 12);
        bi.granularity_bits = static_cast<std::uint8_t>(e[17]);
        const std::uint16_t name_len = be16(e, 18);
        const std::uint32_t extra = be32(e, 20);
        if (extra > max_snapshot_extra_data)
            return fail_corrupt(fmt::format("bitmap {} has {} bytes of extra data", i, extra));
        HSDK_TRY(const std::byte *name, r.at(off + 24 + extra, name_len));
        bi.name = as_string(name, name_len);
        if (static_cast<std::uint64_t>(bi.table_size) * 8 > max_l1_bytes)
            return fail_corrupt(fmt::format("bitmap '{}' has a table of {} entries", bi.name, bi.table_size));
        off += (24 + extra + name_len + 7) & ~std::uint64_t{7};
        out.push_back(std::move(bi));
    }
    return out;
}

}  // namespace hypersdk::format::qcow2
