// Writing qcow2 v3 (compat 1.1, 16-bit refcounts). Layout, in allocation order:
//   cluster 0            header, header extensions, backing file name
//   clusters 1..         L1 table (its size follows from the virtual size)
//   then, as committed   data clusters, compressed streams packed back to back, L2 tables (each
//                        written once the pipeline has moved past it), refcount blocks (each
//                        written once every cluster it covers has been allocated)
//   at the end           the last refcount blocks and the refcount table, sized by a fixed point
//                        so that they count themselves.
// Every host cluster is allocated exactly once and never freed, so each refcount is known when its
// block is written: 1, or for clusters holding compressed streams, the number of streams touching it.
#include "format/qcow2/qcow2.hpp"
#include "format/qcow2/qcow2_format.hpp"

#include "core/codec.hpp"
#include "core/endian.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

namespace hypersdk::format::qcow2 {
namespace {

constexpr std::uint32_t writer_refcount_order = 4;
constexpr std::uint64_t max_refcount = 0xffff;
constexpr std::size_t tail_flush_bytes = 4 << 20;

struct Settings {
    std::uint32_t cluster_bits = 16;
    CompressionType compression = CompressionType::deflate;
    int level = 4;
    bool compress = false;
    std::string backing_file;
    std::string backing_format;
    std::uint64_t size = 0;  // virtual size, rounded up to whole sectors as qemu does
};

// Appends at the end of the file go through one buffer so small metadata and compressed streams
// become large writes; anything that does not continue the buffer is written directly.
class TailBuffer {
public:
    explicit TailBuffer(io::File *file) : file_(file) {}

    Result<void> write(std::uint64_t offset, std::span<const std::byte> data) {
        if (!buf_.empty()) {
            const std::uint64_t end = base_ + buf_.size();
            if (offset >= base_ && offset <= end) {
                const auto at = static_cast<std::size_t>(offset - base_);
                if (at + data.size() > buf_.size()) buf_.resize(at + data.size());
                std::memcpy(buf_.data() + at, data.data(), data.size());
                return buf_.size() >= tail_flush_bytes ? flush() : success();
            }
            if (offset + data.size() <= base_) return file_->write_all(offset, data);
            HSDK_TRYV(flush());
        }
        base_ = offset;
        buf_.assign(data.begin(), data.end());
        return success();
    }

    Result<void> flush() {
        if (buf_.empty()) return success();
        HSDK_TRYV(file_->write_all(base_, buf_));
        buf_.clear();
        return success();
    }

private:
    io::File *file_;
    std::uint64_t base_ = 0;
    std::vector<std::byte> buf_;
};

struct Feature {
    std::uint8_t type, bit;
    const char *name;
};
constexpr Feature feature_table[] = {
    {0, 0, "dirty bit"},       {0, 1, "corrupt bit"},     {0, 2, "external data file"}, {0, 3, "compression type"},
    {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"}, {2, 0, "bitmaps"},            {2, 1, "raw external data"},
};

class Qcow2Writer final : public DiskWriter {
public:
    Qcow2Writer(io::File *file, Settings s)
        : file_(file), s_(std::move(s)), cs_(1ULL << s_.cluster_bits), l2_bits_(s_.cluster_bits - 3), tail_(file) {
        const std::uint64_t clusters = s_.size / cs_ + (s_.size % cs_ != 0);
        l1_.assign(static_cast<std::size_t>((clusters + (1ULL << l2_bits_) - 1) >> l2_bits_), 0);
        block_entries_ = (cs_ * 8) >> writer_refcount_order;
        allocate(1, 1);  // header
        const std::uint64_t l1_bytes = l1_.size() * 8;
        l1_clusters_ = (l1_bytes + cs_ - 1) / cs_;
        allocate(l1_clusters_, 1);
    }

    std::uint64_t granularity() const noexcept override { return cs_; }
    bool has_encoder() const noexcept override { return s_.compress; }

    Result<EncodedRun> encode(std::uint64_t, std::span<const std::byte> data) const override {
        const auto cs = static_cast<std::size_t>(cs_);
        const auto kind = codec_kind();
        EncodedRun out;
        thread_local std::vector<std::byte> scratch;
        scratch.resize(core::codec::compress_bound(kind, cs));
        for (std::size_t at = 0; at < data.size(); at += cs) {
            HSDK_TRY(auto n, core::codec::compress(kind, s_.level, data.subspan(at, cs), scratch));
            if (n >= cs) {  // does not shrink: stored as a plain cluster, as qemu does
                out.piece_sizes.push_back(0);
                continue;
            }
            out.bytes.insert(out.bytes.end(), scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(n));
            out.piece_sizes.push_back(static_cast<std::uint32_t>(n));
        }
        return out;
    }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *encoded) override {
        const auto cs = static_cast<std::size_t>(cs_);
        const std::size_t clusters = data.size() / cs;
        if (!encoded) return write_plain(offset, data);
        if (encoded->piece_sizes.size() != clusters)
            return fail(Errc::internal, "qcow2 writer: encoded run does not match its data");
        std::size_t cursor = 0;
        for (std::size_t i = 0; i < clusters;) {
            if (encoded->piece_sizes[i] == 0) {
                std::size_t j = i;
                while (j < clusters && encoded->piece_sizes[j] == 0) ++j;
                HSDK_TRYV(write_plain(offset + i * cs_, data.subspan(i * cs, (j - i) * cs)));
                i = j;
                continue;
            }
            const std::size_t n = encoded->piece_sizes[i];
            if (cursor + n > encoded->bytes.size()) return fail(Errc::internal, "qcow2 writer: encoded run is short");
            HSDK_TRYV(write_compressed(offset + i * cs_, std::span<const std::byte>(encoded->bytes).subspan(cursor, n)));
            cursor += n;
            ++i;
        }
        return success();
    }

    Result<void> commit_zeroes(std::uint64_t offset, std::uint64_t length) override {
        if (s_.backing_file.empty()) return DiskWriter::commit_zeroes(offset, length);
        for (std::uint64_t at = offset; at < offset + length && at < s_.size; at += cs_) HSDK_TRYV(set_entry(at, oflag_zero));
        return success();
    }

    Result<void> finish() override {
        HSDK_TRYV(flush_l2());
        HSDK_TRYV(flush_full_refblocks());
        HSDK_TRYV(write_refcount_structures());
        HSDK_TRYV(tail_.flush());
        HSDK_TRYV(write_l1());
        HSDK_TRYV(write_header());
        return file_->truncate(end_ * cs_);
    }

    std::optional<BackingRef> backing() const override {
        if (s_.backing_file.empty()) return std::nullopt;
        return BackingRef{s_.backing_file, s_.backing_format};
    }

    // Bytes the header cluster needs, with or without the feature name table.
    static std::uint64_t header_bytes(const Settings &s, bool with_features) {
        std::uint64_t n = v3_header_length_with_compression;
        if (!s.backing_format.empty()) n += 8 + ((s.backing_format.size() + 7) & ~std::size_t{7});
        if (with_features) n += 8 + sizeof(feature_table) / sizeof(feature_table[0]) * 48;
        return n + 8 + s.backing_file.size();
    }

private:
    core::codec::Kind codec_kind() const { return s_.compression == CompressionType::zstd ? core::codec::Kind::zstd : core::codec::Kind::deflate_raw; }

    // Host clusters: allocated at the end of the file, never freed.
    std::uint64_t allocate(std::uint64_t n, std::uint16_t initial) {
        const std::uint64_t first = end_;
        end_ += n;
        counts_.insert(counts_.end(), static_cast<std::size_t>(n), initial);
        return first;
    }
    std::uint16_t &count(std::uint64_t cluster) { return counts_[static_cast<std::size_t>(cluster - window_first())]; }
    std::uint64_t window_first() const { return blocks_written_ * block_entries_; }

    Result<void> write_plain(std::uint64_t guest, std::span<const std::byte> data) {
        const std::uint64_t n = data.size() / cs_;
        const std::uint64_t first = allocate(n, 1);
        HSDK_TRYV(file_->write_behind(first * cs_, data));
        for (std::uint64_t i = 0; i < n; ++i) HSDK_TRYV(set_entry(guest + i * cs_, ((first + i) * cs_) | oflag_copied));
        return flush_full_refblocks();
    }

    // Packs the stream after the previous one; a stream may continue into the next cluster only while
    // the current one is the last in the file, and a cluster's refcount must stay below 2^16.
    Result<void> write_compressed(std::uint64_t guest, std::span<const std::byte> stream) {
        const std::uint64_t n = stream.size();
        std::uint64_t pos = 0;
        if (cursor_ != 0) {
            const std::uint64_t c0 = cursor_ / cs_;
            if (count(c0) < max_refcount && (c0 + 1 == end_ || cursor_ + n <= (c0 + 1) * cs_)) pos = cursor_;
        }
        if (pos == 0) pos = end_ * cs_;
        const std::uint64_t last = (pos + n - 1) / cs_;
        if (last >= end_) allocate(last + 1 - end_, 0);
        for (std::uint64_t k = pos / cs_; k <= last; ++k) ++count(k);
        cursor_ = (pos + n) % cs_ ? pos + n : 0;
        const unsigned shift = 62 - (s_.cluster_bits - 8);
        if (pos >> shift)
            return fail(Errc::unsupported, "unsupported: qcow2 output too large for compressed clusters at this cluster size");
        const std::uint64_t sectors = ((pos + n - 1) >> 9) - (pos >> 9);
        HSDK_TRYV(tail_.write(pos, stream));
        HSDK_TRYV(set_entry(guest, oflag_compressed | (sectors << shift) | pos));
        return flush_full_refblocks();
    }

    Result<void> set_entry(std::uint64_t guest, std::uint64_t value) {
        const std::uint64_t index = guest / cs_;
        const std::uint64_t l1_index = index >> l2_bits_;
        if (l1_index >= l1_.size()) return fail(Errc::internal, fmt::format("qcow2 writer: guest offset {:#x} beyond the disk", guest));
        if (!l2_ || l2_index_ != l1_index) {
            HSDK_TRYV(flush_l2());
            l2_ = std::vector<std::uint64_t>(static_cast<std::size_t>(1ULL << l2_bits_), 0);
            l2_index_ = l1_index;
        }
        (*l2_)[static_cast<std::size_t>(index & ((1ULL << l2_bits_) - 1))] = value;
        return success();
    }

    Result<void> flush_l2() {
        if (!l2_) return success();
        std::vector<std::byte> raw(static_cast<std::size_t>(cs_));
        for (std::size_t i = 0; i < l2_->size(); ++i) store_be<std::uint64_t>(raw.data() + i * 8, (*l2_)[i]);
        const std::uint64_t at = allocate(1, 1) * cs_;
        HSDK_TRYV(tail_.write(at, raw));
        l1_[static_cast<std::size_t>(l2_index_)] = at | oflag_copied;
        l2_.reset();
        return flush_full_refblocks();
    }

    std::vector<std::byte> encode_block(std::uint64_t first_cluster) {
        std::vector<std::byte> raw(static_cast<std::size_t>(cs_));
        for (std::uint64_t i = 0; i < block_entries_; ++i) {
            const std::uint64_t k = first_cluster + i;
            if (k >= end_) break;
            store_be<std::uint16_t>(raw.data() + i * 2, count(k));
        }
        return raw;
    }

    // Writes every refcount block whose clusters have all been allocated.
    Result<void> flush_full_refblocks() {
        while (end_ >= window_first() + block_entries_) {
            const std::uint64_t first = window_first();
            if (cursor_ != 0 && cursor_ / cs_ < first + block_entries_) cursor_ = 0;  // no more streams there
            const std::uint64_t at = allocate(1, 1) * cs_;  // lands in a later block
            HSDK_TRYV(tail_.write(at, encode_block(first)));
            reftable_.push_back(at);
            counts_.erase(counts_.begin(), counts_.begin() + static_cast<std::ptrdiff_t>(block_entries_));
            ++blocks_written_;
        }
        return success();
    }

    Result<void> write_refcount_structures() {
        // R more refcount blocks and T refcount table clusters must cover every cluster, themselves included.
        std::uint64_t r = 0, t = 0;
        for (;;) {
            const std::uint64_t total = end_ + r + t;
            const std::uint64_t blocks = (total + block_entries_ - 1) / block_entries_;
            const std::uint64_t r2 = blocks - blocks_written_;
            const std::uint64_t t2 = (blocks * 8 + cs_ - 1) / cs_;
            if (r2 == r && t2 == t) break;
            r = r2;
            t = t2;
        }
        if (t * cs_ > max_refcount_table_bytes)
            return fail(Errc::unsupported, "unsupported: qcow2 output needs a refcount table larger than 8 MiB; use larger clusters");
        const std::uint64_t first_block = allocate(r, 1);
        const std::uint64_t table = allocate(t, 1);
        for (std::uint64_t i = 0; i < r; ++i) {
            const std::uint64_t at = (first_block + i) * cs_;
            HSDK_TRYV(tail_.write(at, encode_block(window_first())));
            reftable_.push_back(at);
            const auto drop = std::min<std::uint64_t>(block_entries_, counts_.size());
            counts_.erase(counts_.begin(), counts_.begin() + static_cast<std::ptrdiff_t>(drop));
            ++blocks_written_;
        }
        std::vector<std::byte> raw(static_cast<std::size_t>(t * cs_));
        for (std::size_t i = 0; i < reftable_.size(); ++i) store_be<std::uint64_t>(raw.data() + i * 8, reftable_[i]);
        HSDK_TRYV(tail_.write(table * cs_, raw));
        reftable_offset_ = table * cs_;
        reftable_clusters_ = t;
        return success();
    }

    Result<void> write_l1() {
        if (l1_.empty()) return success();
        std::vector<std::byte> raw(static_cast<std::size_t>(l1_clusters_ * cs_));
        for (std::size_t i = 0; i < l1_.size(); ++i) store_be<std::uint64_t>(raw.data() + i * 8, l1_[i]);
        return file_->write_all(cs_, raw);
    }

    Result<void> write_header() {
        std::vector<std::byte> h(static_cast<std::size_t>(cs_));
        std::byte *p = h.data();
        const bool zstd = s_.compression == CompressionType::zstd;
        store_be<std::uint32_t>(p + 0, header_magic);
        store_be<std::uint32_t>(p + 4, 3);
        store_be<std::uint32_t>(p + 20, s_.cluster_bits);
        store_be<std::uint64_t>(p + 24, s_.size);
        store_be<std::uint32_t>(p + 36, static_cast<std::uint32_t>(l1_.size()));
        store_be<std::uint64_t>(p + 40, cs_);
        store_be<std::uint64_t>(p + 48, reftable_offset_);
        store_be<std::uint32_t>(p + 56, static_cast<std::uint32_t>(reftable_clusters_));
        store_be<std::uint64_t>(p + 72, zstd ? incompat_compression : 0);
        store_be<std::uint32_t>(p + 96, writer_refcount_order);
        store_be<std::uint32_t>(p + 100, v3_header_length_with_compression);
        p[104] = std::byte{static_cast<std::uint8_t>(s_.compression)};

        std::size_t at = v3_header_length_with_compression;
        auto extension = [&](std::uint32_t type, std::span<const std::byte> data) {
            store_be<std::uint32_t>(p + at, type);
            store_be<std::uint32_t>(p + at + 4, static_cast<std::uint32_t>(data.size()));
            std::memcpy(p + at + 8, data.data(), data.size());
            at += 8 + ((data.size() + 7) & ~std::size_t{7});
        };
        if (!s_.backing_format.empty()) extension(ext_backing_format, std::as_bytes(std::span(s_.backing_format)));
        // The feature name table only helps older readers explain themselves; qemu drops it too
        // when small clusters leave no room.
        if (header_bytes(s_, true) <= cs_) {
            std::vector<std::byte> table(sizeof(feature_table) / sizeof(feature_table[0]) * 48);
            std::size_t i = 0;
            for (const auto &f : feature_table) {
                table[i] = std::byte{f.type};
                table[i + 1] = std::byte{f.bit};
                std::memcpy(table.data() + i + 2, f.name, std::strlen(f.name));
                i += 48;
            }
            extension(ext_feature_table, table);
        }
        at += 8;  // end of extensions
        if (!s_.backing_file.empty()) {
            store_be<std::uint64_t>(p + 8, at);
            store_be<std::uint32_t>(p + 16, static_cast<std::uint32_t>(s_.backing_file.size()));
            std::memcpy(p + at, s_.backing_file.data(), s_.backing_file.size());
        }
        return file_->write_all(0, h);
    }

    io::File *file_;
    Settings s_;
    const std::uint64_t cs_;
    const unsigned l2_bits_;
    TailBuffer tail_;
    std::vector<std::uint64_t> l1_;
    std::uint64_t l1_clusters_ = 0;
    std::optional<std::vector<std::uint64_t>> l2_;  // the L2 table being filled
    std::uint64_t l2_index_ = 0;
    std::uint64_t end_ = 0;      // clusters allocated so far
    std::uint64_t cursor_ = 0;   // where the next compressed stream may go (0: a new cluster)
    std::uint64_t block_entries_ = 0;
    std::uint64_t blocks_written_ = 0;
    std::vector<std::uint16_t> counts_;  // refcounts of clusters not yet covered by a written block
    std::vector<std::uint64_t> reftable_;
    std::uint64_t reftable_offset_ = 0;
    std::uint64_t reftable_clusters_ = 0;
};

Result<int> parse_int_option(std::string_view key, std::string_view value, int lo, int hi) {
    int n = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || p != value.data() + value.size() || n < lo || n > hi)
        return fail(Errc::invalid_argument, fmt::format("option {}: '{}' is not a number from {} to {}", key, value, lo, hi));
    return n;
}

Result<Settings> parse_settings(const CreateRequest &req) {
    FormatOptions opts = req.options;
    Settings s;
    s.compress = req.compress;
    if (auto v = take_option(opts, "cluster_size")) {
        HSDK_TRY(auto cs, parse_size_option("cluster_size", *v));
        if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)) != 0)
            return fail(Errc::invalid_argument,
                        fmt::format("option cluster_size: {} is not a power of two from 512 to 2M", *v));
        s.cluster_bits = static_cast<std::uint32_t>(__builtin_ctzll(cs));
    }
    if (auto v = take_option(opts, "compression_type")) {
        if (*v == "zlib") s.compression = CompressionType::deflate;
        else if (*v == "zstd") s.compression = CompressionType::zstd;
        else return fail(Errc::invalid_argument, fmt::format("option compression_type: '{}' is not zlib or zstd", *v));
    }
    const bool zstd = s.compression == CompressionType::zstd;
    // libdeflate's level 4 compresses within about 2% of zlib's level 6 at 1.5x the speed of its own
    // level 6 (bench/README.md); zstd's own default is 3.
    s.level = zstd ? 3 : 4;
    if (auto v = take_option(opts, "compression_level")) {
        HSDK_TRY(s.level, parse_int_option("compression_level", *v, 1, zstd ? 19 : 12));
    }
    if (auto v = take_option(opts, "backing_file")) s.backing_file = *v;
    if (auto v = take_option(opts, "backing_fmt")) s.backing_format = *v;
    // qemu-img's names, accepted where they ask for what this writer does anyway.
    if (auto v = take_option(opts, "compat")) {
        if (*v == "0.10" || *v == "v2")
            return fail(Errc::unsupported, "option compat: qcow2 version 2 (compat=0.10) is not written; the output is version 3 "
                                           "(compat=1.1), which every QEMU since 1.1 opens");
        if (*v != "1.1" && *v != "v3") return fail(Errc::invalid_argument, fmt::format("option compat: '{}' is not 1.1 or 0.10", *v));
    }
    if (auto v = take_option(opts, "preallocation")) {
        if (*v != "off")
            return fail(Errc::unsupported,
                        fmt::format("option preallocation: '{}' is not supported; the output is sparse (preallocation=off)", *v));
    }
    HSDK_TRYV(reject_unknown_options(opts, "qcow2"));

    if (!s.backing_format.empty() && s.backing_file.empty())
        return fail(Errc::invalid_argument, "option backing_fmt needs backing_file");
    if (!s.backing_format.empty()) {
        const auto canonical = canonical_format_name(s.backing_format);
        if (!canonical) return fail(Errc::invalid_argument, fmt::format("option backing_fmt: unknown format '{}'", s.backing_format));
        if (*canonical == "vhd") s.backing_format = "vpc";  // the name qemu knows it by
    }
    if (s.backing_file.size() > max_backing_name)
        return fail(Errc::invalid_argument, fmt::format("option backing_file: name is longer than {} bytes", max_backing_name));
    if (s.backing_file.find('\0') != std::string::npos)
        return fail(Errc::invalid_argument, "option backing_file: name contains a NUL byte");

    const std::uint64_t cs = 1ULL << s.cluster_bits;
    s.size = (req.virtual_size + 511) / 512 * 512;
    const std::uint64_t clusters = s.size / cs + (s.size % cs != 0);
    const std::uint64_t l1_entries = (clusters + (cs / 8) - 1) / (cs / 8);
    if (l1_entries * 8 > max_l1_bytes)
        return fail(Errc::invalid_argument, fmt::format("a virtual size of {} bytes needs an L1 table larger than 32 MiB with "
                                                        "{}-byte clusters; use larger clusters",
                                                        req.virtual_size, cs));
    if (Qcow2Writer::header_bytes(s, false) > cs)
        return fail(Errc::invalid_argument,
                    fmt::format("backing file name and format do not fit in the {}-byte header cluster; use larger clusters", cs));
    return s;
}

}  // namespace

Result<std::unique_ptr<DiskWriter>> create(const CreateRequest &req) {
    HSDK_TRY(auto settings, parse_settings(req));
    HSDK_TRY(auto *file, req.outputs->add(req.path));
    return std::unique_ptr<DiskWriter>(new Qcow2Writer(file, std::move(settings)));
}

}  // namespace hypersdk::format::qcow2
