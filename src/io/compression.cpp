#include "io/compression.hpp"

#include "core/executor.hpp"
#include "core/zero.hpp"
#include "io/atomic_output.hpp"
#include "io/file.hpp"
#include "io/file_source.hpp"
#include "io/tar_stream_source.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <lz4frame.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace hypersdk::io {
namespace {

constexpr std::size_t cmp_kib = std::size_t{1} << 10;
constexpr std::size_t cmp_mib = std::size_t{1} << 20;

constexpr std::uint32_t cmp_zstd_magic = 0xFD2FB528u;
constexpr std::uint32_t cmp_lz4_magic = 0x184D2204u;
constexpr std::uint32_t cmp_lz4_legacy_magic = 0x184C2102u;
// Skippable frames, the same range in zstd and lz4: 0x184D2A50 .. 0x184D2A5F.
constexpr std::uint32_t cmp_skippable_magic = 0x184D2A50u;
// zstd's seekable format: the seek table's skippable frame and the magic ending its footer.
constexpr std::uint32_t cmp_seek_table_magic = 0x184D2A5Eu;
constexpr std::uint32_t cmp_seekable_magic = 0x8F92EAB1u;
constexpr std::size_t cmp_seek_footer_size = 9;
// A seek table larger than this is ignored (the frames are walked instead): 8 M frames (32 TiB of
// 4 MiB units, 512 GiB of 64 KiB ones), and a hostile footer cannot make us read gigabytes.
constexpr std::uint64_t cmp_seek_table_max = 64 * cmp_mib;

constexpr std::size_t cmp_zstd_block_max = 128 * cmp_kib;  // Block_Maximum_Size's upper bound
constexpr std::size_t cmp_gzip_header_size = 24;           // our member header with its 'HS' subfield
// Compressed bytes read at a time by the streaming decoders and the counting pass.
constexpr std::size_t cmp_stream_chunk = 4 * cmp_mib;
// Decompressed bytes handed on at a time by the streaming decoders.
constexpr std::size_t cmp_stream_out = cmp_mib;
// The granularity of zero runs in allocation() and of holes in decompress_file's output.
constexpr std::size_t cmp_zero_block = 4 * cmp_kib;
constexpr std::size_t cmp_hole_block = 64 * cmp_kib;

std::uint16_t cmp_le16(const std::byte *p) noexcept {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) | std::to_integer<unsigned>(p[1]) << 8);
}
std::uint32_t cmp_le24(const std::byte *p) noexcept {
    return std::to_integer<std::uint32_t>(p[0]) | std::to_integer<std::uint32_t>(p[1]) << 8 | std::to_integer<std::uint32_t>(p[2]) << 16;
}
std::uint32_t cmp_le32(const std::byte *p) noexcept { return cmp_le24(p) | std::to_integer<std::uint32_t>(p[3]) << 24; }
std::uint64_t cmp_le64(const std::byte *p) noexcept { return cmp_le32(p) | std::uint64_t{cmp_le32(p + 4)} << 32; }
void cmp_put_le16(std::byte *p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::byte>(v);
    p[1] = static_cast<std::byte>(v >> 8);
}
void cmp_put_le32(std::byte *p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
bool cmp_is_skippable(std::uint32_t magic) noexcept { return (magic & 0xFFFFFFF0u) == cmp_skippable_magic; }

// Whether the few bytes left at the end of a stream start like `magic` (little-endian): the start of
// a frame cut short rather than trailing garbage.
bool cmp_magic_prefix(std::span<const std::byte> rest, std::uint32_t magic) noexcept {
    for (std::size_t i = 0; i < rest.size() && i < 4; ++i)
        if (std::to_integer<std::uint32_t>(rest[i]) != ((magic >> (8 * i)) & 0xff)) return false;
    return true;
}

std::uint64_t cmp_mul_saturating(std::uint64_t a, std::uint64_t b) noexcept {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::numeric_limits<std::uint64_t>::max();
    return a * b;
}

// The most compressed bytes a unit of `ulen` bytes may take and still be indexed: every format's
// worst case (stored blocks, headers) is far below this. A frame padded beyond it (a hostile or odd
// stream) is streamed instead, so reading one unit never reads without bound.
std::uint64_t cmp_clen_bound(std::uint64_t ulen) noexcept { return ulen + ulen / 16 + cmp_mib; }

std::string_view cmp_name(Compression c) noexcept { return compression_name(c); }

const char *cmp_isal_describe(int rc) noexcept {
    switch (rc) {
    case ISAL_INCORRECT_CHECKSUM: return "gzip checksum mismatch (the data is corrupt)";
    case ISAL_INVALID_WRAPPER: return "not a valid gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "gzip compression method not supported";
    case ISAL_END_INPUT: return "gzip member cut short (truncated)";
    default: return "invalid deflate data (the data is corrupt)";
    }
}

// A zstd library error as ours: a checksum or data error is corrupt_image; a frame that needs more
// than we allow (a window over 128 MiB, a dictionary) is unsupported.
Error cmp_zstd_error(std::size_t rc, const std::string &name, std::uint64_t offset) {
    switch (ZSTD_getErrorCode(rc)) {
    case ZSTD_error_checksum_wrong:
        return Error{Errc::corrupt_image,
                     fmt::format("corrupt image: {}: zstd checksum mismatch at compressed offset {:#x} (the data is corrupt)", name, offset)};
    case ZSTD_error_frameParameter_windowTooLarge:
        return Error{Errc::unsupported, fmt::format("unsupported: {}: the zstd frame at compressed offset {:#x} needs a window over 128 MiB "
                                                    "(written with zstd --long=28 or more); decompress it with zstd --long=31 -d",
                                                    name, offset)};
    case ZSTD_error_dictionary_wrong:
    case ZSTD_error_dictionary_corrupted:
        return Error{Errc::unsupported,
                     fmt::format("unsupported: {}: the zstd frame at compressed offset {:#x} needs a dictionary", name, offset)};
    case ZSTD_error_memory_allocation: return Error{Errc::no_memory, fmt::format("{}: out of memory decompressing zstd data", name)};
    default:
        return Error{Errc::corrupt_image, fmt::format("corrupt image: {}: invalid zstd data at compressed offset {:#x} ({})", name, offset,
                                                      ZSTD_getErrorName(rc))};
    }
}

Error cmp_lz4_error(std::size_t rc, const std::string &name, std::uint64_t offset) {
    const std::string_view what = LZ4F_getErrorName(rc);
    if (what.find("hecksum") != std::string_view::npos)
        return Error{Errc::corrupt_image, fmt::format("corrupt image: {}: lz4 checksum mismatch at compressed offset {:#x} (the data is "
                                                      "corrupt; {})",
                                                      name, offset, what)};
    if (what.find("allocation") != std::string_view::npos)
        return Error{Errc::no_memory, fmt::format("{}: out of memory decompressing lz4 data", name)};
    return Error{Errc::corrupt_image,
                 fmt::format("corrupt image: {}: invalid lz4 data at compressed offset {:#x} ({})", name, offset, what)};
}

// ---- per-thread codec state (the executor's threads live as long as the process) -------------

ZSTD_DCtx *cmp_zstd_dctx() {
    struct Holder {
        ZSTD_DCtx *d = ZSTD_createDCtx();
        ~Holder() { ZSTD_freeDCtx(d); }
    };
    thread_local Holder h;
    return h.d;
}

ZSTD_CCtx *cmp_zstd_cctx() {
    struct Holder {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ~Holder() { ZSTD_freeCCtx(c); }
    };
    thread_local Holder h;
    return h.c;
}

LZ4F_dctx *cmp_lz4_dctx() {
    struct Holder {
        LZ4F_dctx *d = nullptr;
        Holder() {
            if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION))) d = nullptr;
        }
        ~Holder() { LZ4F_freeDecompressionContext(d); }
    };
    thread_local Holder h;
    return h.d;
}

inflate_state *cmp_inflate_state() {
    thread_local std::unique_ptr<inflate_state> st(new (std::nothrow) inflate_state{});
    return st.get();
}

libdeflate_compressor *cmp_deflate_compressor(int level) {
    struct Holder {
        std::array<libdeflate_compressor *, 13> by_level{};
        ~Holder() {
            for (auto *c : by_level) libdeflate_free_compressor(c);
        }
    };
    thread_local Holder h;
    auto &slot = h.by_level[static_cast<std::size_t>(std::clamp(level, 1, 12))];
    if (slot == nullptr) slot = libdeflate_alloc_compressor(std::clamp(level, 1, 12));
    return slot;
}

// ---- whole-unit codecs (the indexed reader and the writer) -----------------------------------

// Decodes `in`, whole frames or members (skippable frames allowed between them), into exactly
// `out`: a stream that decodes to more or fewer bytes, or fails a checksum, fails here and `out`
// must not be used. `where` names the unit; `coff` is its compressed offset.
Result<void> cmp_decode_unit(Compression c, std::span<const std::byte> in, std::span<std::byte> out, const std::string &name,
                             std::uint64_t coff) {
    auto mismatch = [&](std::string_view what) {
        return fail_corrupt(fmt::format("{}: the {} unit at compressed offset {:#x} {} (its headers say {} bytes)", name, cmp_name(c), coff,
                                        what, out.size()));
    };
    switch (c) {
    case Compression::zstd: {
        ZSTD_DCtx *d = cmp_zstd_dctx();
        if (d == nullptr) return fail(Errc::no_memory, "cannot allocate a zstd decompression context");
        const std::size_t n = ZSTD_decompressDCtx(d, out.data(), out.size(), in.data(), in.size());
        if (ZSTD_isError(n)) {
            if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return mismatch("decompresses to more bytes than that");
            return fail(cmp_zstd_error(n, name, coff));
        }
        if (n != out.size()) return mismatch(fmt::format("decompresses to {} bytes", n));
        return success();
    }
    case Compression::lz4: {
        LZ4F_dctx *d = cmp_lz4_dctx();
        if (d == nullptr) return fail(Errc::no_memory, "cannot allocate an lz4 decompression context");
        LZ4F_resetDecompressionContext(d);
        std::size_t ipos = 0, opos = 0, hint = 1;
        while (true) {
            std::size_t src = in.size() - ipos, dst = out.size() - opos;
            hint = LZ4F_decompress(d, out.data() + opos, &dst, in.data() + ipos, &src, nullptr);
            if (LZ4F_isError(hint)) {
                LZ4F_resetDecompressionContext(d);
                return fail(cmp_lz4_error(hint, name, coff + ipos));
            }
            ipos += src;
            opos += dst;
            if (hint == 0 && ipos == in.size()) break;
            if (src == 0 && dst == 0) break;  // no progress: the output is full, or the input is cut short
        }
        if (hint != 0 || ipos != in.size()) {
            LZ4F_resetDecompressionContext(d);
            return ipos == in.size() && opos < out.size() ? mismatch("is cut short (truncated)") : mismatch("decompresses to more bytes than that");
        }
        if (opos != out.size()) return mismatch(fmt::format("decompresses to {} bytes", opos));
        return success();
    }
    case Compression::gzip: {
        inflate_state *st = cmp_inflate_state();
        if (st == nullptr) return fail(Errc::no_memory, "cannot allocate an inflate state");
        std::size_t ipos = 0, opos = 0;
        while (ipos < in.size()) {
            isal_inflate_init(st);
            st->crc_flag = ISAL_GZIP;
            st->next_in = reinterpret_cast<std::uint8_t *>(const_cast<std::byte *>(in.data() + ipos));
            st->avail_in = static_cast<std::uint32_t>(in.size() - ipos);
            st->next_out = reinterpret_cast<std::uint8_t *>(out.data() + opos);
            st->avail_out = static_cast<std::uint32_t>(out.size() - opos);
            while (true) {
                const std::uint32_t in_before = st->avail_in, out_before = st->avail_out;
                const int rc = isal_inflate(st);
                if (rc < 0)
                    return fail_corrupt(fmt::format("{}: {} at compressed offset {:#x}", name, cmp_isal_describe(rc),
                                                    coff + (in.size() - st->avail_in)));
                if (st->block_state == ISAL_BLOCK_FINISH) break;
                if (st->avail_in == in_before && st->avail_out == out_before) {
                    return st->avail_in == 0 ? mismatch("is cut short (truncated)") : mismatch("decompresses to more bytes than that");
                }
            }
            ipos = in.size() - st->avail_in;
            opos = out.size() - st->avail_out;
        }
        if (opos != out.size()) return mismatch(fmt::format("decompresses to {} bytes", opos));
        return success();
    }
    case Compression::none: break;
    }
    if (in.size() != out.size()) return mismatch("has another length");
    if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
    return success();
}

// The smallest lz4 block size (64 KiB, 256 KiB, 1 MiB, 4 MiB) holding `unit` bytes, so that a unit
// of the writer is one block (or as few as the format allows).
LZ4F_blockSizeID_t cmp_lz4_block_size(std::size_t unit) noexcept {
    if (unit <= 64 * cmp_kib) return LZ4F_max64KB;
    if (unit <= 256 * cmp_kib) return LZ4F_max256KB;
    if (unit <= cmp_mib) return LZ4F_max1MB;
    return LZ4F_max4MB;
}

// Grows `out` to at least n bytes (never shrinks it: recycled buffers keep their size, so a unit
// costs no memset).
void cmp_reserve(std::vector<std::byte> &out, std::size_t n) {
    if (out.size() < n) out.resize(n);
}

// Compresses one unit into one standalone frame or member (the layouts in the header) at the start
// of `out`; returns its length.
Result<std::size_t> cmp_compress_unit(Compression c, int level, std::size_t unit, std::span<const std::byte> in, std::vector<std::byte> &out) {
    switch (c) {
    case Compression::zstd: {
        ZSTD_CCtx *cc = cmp_zstd_cctx();
        if (cc == nullptr) return fail(Errc::no_memory, "cannot allocate a zstd compression context");
        ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
        for (auto [param, value] : {std::pair{ZSTD_c_compressionLevel, level}, std::pair{ZSTD_c_checksumFlag, 1},
                                    std::pair{ZSTD_c_contentSizeFlag, 1}}) {
            if (const std::size_t rc = ZSTD_CCtx_setParameter(cc, param, value); ZSTD_isError(rc))
                return fail(Errc::internal, fmt::format("zstd: cannot set a parameter: {}", ZSTD_getErrorName(rc)));
        }
        cmp_reserve(out, ZSTD_compressBound(in.size()));
        const std::size_t n = ZSTD_compress2(cc, out.data(), out.size(), in.data(), in.size());
        if (ZSTD_isError(n)) return fail(Errc::internal, fmt::format("zstd compression failed: {}", ZSTD_getErrorName(n)));
        return n;
    }
    case Compression::lz4: {
        LZ4F_preferences_t prefs{};
        prefs.frameInfo.blockSizeID = cmp_lz4_block_size(unit);
        prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
        prefs.frameInfo.contentSize = in.size();  // 0 leaves it out: an empty frame, its size read from its lone end mark
        prefs.compressionLevel = level;
        cmp_reserve(out, LZ4F_compressFrameBound(in.size(), &prefs));
        const std::size_t n = LZ4F_compressFrame(out.data(), out.size(), in.data(), in.size(), &prefs);
        if (LZ4F_isError(n)) return fail(Errc::internal, fmt::format("lz4 compression failed: {}", LZ4F_getErrorName(n)));
        return n;
    }
    case Compression::gzip: {
        libdeflate_compressor *dc = cmp_deflate_compressor(level);
        if (dc == nullptr) return fail(Errc::no_memory, "cannot allocate a deflate compressor");
        const std::size_t bound = libdeflate_deflate_compress_bound(dc, in.size());
        cmp_reserve(out, cmp_gzip_header_size + bound + 8);
        const std::size_t n = libdeflate_deflate_compress(dc, in.data(), in.size(), out.data() + cmp_gzip_header_size, bound);
        if (n == 0) return fail(Errc::internal, "deflate compression failed");
        const std::size_t total = cmp_gzip_header_size + n + 8;
        std::byte *h = out.data();
        const std::uint8_t header[12] = {0x1f, 0x8b, 8, 4, 0, 0, 0, 0, static_cast<std::uint8_t>(level >= 9 ? 2 : level <= 1 ? 4 : 0), 255, 12, 0};
        std::memcpy(h, header, sizeof header);
        h[12] = std::byte{'H'};
        h[13] = std::byte{'S'};
        cmp_put_le16(h + 14, 8);
        cmp_put_le32(h + 16, static_cast<std::uint32_t>(total));
        cmp_put_le32(h + 20, static_cast<std::uint32_t>(in.size()));
        cmp_put_le32(h + cmp_gzip_header_size + n, static_cast<std::uint32_t>(libdeflate_crc32(0, in.data(), in.size())));
        cmp_put_le32(h + cmp_gzip_header_size + n + 4, static_cast<std::uint32_t>(in.size()));
        return total;
    }
    case Compression::none: break;
    }
    cmp_reserve(out, in.size());
    if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
    return in.size();
}

}  // namespace

// ---- names and magic ---------------------------------------------------------------------------

Compression detect_compression(std::span<const std::byte> first_bytes) noexcept {
    if (first_bytes.size() >= 2 && first_bytes[0] == std::byte{0x1f} && first_bytes[1] == std::byte{0x8b}) return Compression::gzip;
    if (first_bytes.size() >= 4) {
        const std::uint32_t magic = cmp_le32(first_bytes.data());
        if (magic == cmp_zstd_magic) return Compression::zstd;
        if (magic == cmp_lz4_magic) return Compression::lz4;
    }
    return Compression::none;
}

Result<Compression> parse_compression(std::string_view name) {
    for (Compression c : {Compression::none, Compression::gzip, Compression::zstd, Compression::lz4})
        if (name == compression_name(c)) return c;
    return fail(Errc::invalid_argument, fmt::format("unknown compression '{}': expected gzip, zstd, lz4 or none", name));
}

std::string_view compression_name(Compression compression) noexcept {
    switch (compression) {
    case Compression::gzip: return "gzip";
    case Compression::zstd: return "zstd";
    case Compression::lz4: return "lz4";
    case Compression::none: break;
    }
    return "none";
}

std::string_view compression_suffix(Compression compression) noexcept {
    switch (compression) {
    case Compression::gzip: return ".gz";
    case Compression::zstd: return ".zst";
    case Compression::lz4: return ".lz4";
    case Compression::none: break;
    }
    return "";
}

namespace compression_detail {

// ---- the forward decoder (streamed sources and the counting pass) ----------------------------

// Decodes a whole stream fed in pieces of any size: every gzip member (ISA-L), every zstd frame
// (ZSTD_decompressStream, skippable frames skipped, the default window limit kept) or every lz4
// frame (LZ4F_decompress), each checksum verified at the end of its frame.
class StreamDecoder {
public:
    using Emit = std::function<Result<void>(std::span<const std::byte>)>;

    StreamDecoder(Compression kind, std::string name) : kind_(kind), name_(std::move(name)), out_(cmp_stream_out) {
        switch (kind_) {
        case Compression::gzip:
            gz_.reset(new (std::nothrow) inflate_state{});
            if (gz_) start_member();
            break;
        case Compression::zstd: zs_ = ZSTD_createDCtx(); break;
        case Compression::lz4:
            if (LZ4F_isError(LZ4F_createDecompressionContext(&lz_, LZ4F_VERSION))) lz_ = nullptr;
            break;
        case Compression::none: break;
        }
    }
    ~StreamDecoder() {
        ZSTD_freeDCtx(zs_);
        LZ4F_freeDecompressionContext(lz_);
    }
    StreamDecoder(const StreamDecoder &) = delete;
    StreamDecoder &operator=(const StreamDecoder &) = delete;

    Result<void> feed(std::span<const std::byte> in, const Emit &emit) {
        Result<void> r = success();
        switch (kind_) {
        case Compression::gzip: r = feed_gzip(in, emit); break;
        case Compression::zstd: r = feed_zstd(in, emit); break;
        case Compression::lz4: r = feed_lz4(in, emit); break;
        case Compression::none: r = emit(in); break;
        }
        fed_ += in.size();
        return r;
    }

    // The input ended: it must end at the end of a frame or member.
    Result<void> finish(const Emit &emit) {
        bool complete = true;
        switch (kind_) {
        case Compression::gzip: complete = member_done_; break;
        case Compression::zstd: {
            // Output the decoder still holds.
            if (zs_ != nullptr && zs_last_ != 0)
                for (int guard = 0; guard < 1 << 16; ++guard) {
                    ZSTD_inBuffer ib{nullptr, 0, 0};
                    ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
                    const std::size_t rc = ZSTD_decompressStream(zs_, &ob, &ib);
                    if (ZSTD_isError(rc)) return fail(cmp_zstd_error(rc, name_, fed_));
                    if (ob.pos == 0) break;
                    zs_last_ = rc;
                    HSDK_TRYV(emit(std::span<const std::byte>(out_.data(), ob.pos)));
                }
            complete = zs_last_ == 0;
            break;
        }
        case Compression::lz4: {
            if (lz_ != nullptr && lz_last_ != 0)
                for (int guard = 0; guard < 1 << 16; ++guard) {
                    std::size_t src = 0, dst = out_.size();
                    const std::size_t rc = LZ4F_decompress(lz_, out_.data(), &dst, nullptr, &src, nullptr);
                    if (LZ4F_isError(rc)) return fail(cmp_lz4_error(rc, name_, fed_));
                    if (dst == 0) break;
                    lz_last_ = rc;
                    HSDK_TRYV(emit(std::span<const std::byte>(out_.data(), dst)));
                }
            complete = lz_last_ == 0;
            break;
        }
        case Compression::none: break;
        }
        if (!complete)
            return fail_corrupt(fmt::format("{}: the {} stream is cut short after {} compressed bytes (truncated)", name_, cmp_name(kind_), fed_));
        return success();
    }

private:
    void start_member() {
        isal_inflate_init(gz_.get());
        gz_->crc_flag = ISAL_GZIP;
        member_done_ = false;
    }

    Result<void> feed_gzip(std::span<const std::byte> in, const Emit &emit) {
        if (!gz_) return fail(Errc::no_memory, "cannot allocate an inflate state");
        inflate_state &st = *gz_;
        st.next_in = reinterpret_cast<std::uint8_t *>(const_cast<std::byte *>(in.data()));
        st.avail_in = static_cast<std::uint32_t>(in.size());
        while (true) {
            if (member_done_) {
                if (st.avail_in == 0) return success();
                // Another member follows (pigz, concatenated files, our units).
                auto *next = st.next_in;
                const auto avail = st.avail_in;
                start_member();
                st.next_in = next;
                st.avail_in = avail;
            }
            const std::uint32_t in_before = st.avail_in;
            st.next_out = reinterpret_cast<std::uint8_t *>(out_.data());
            st.avail_out = static_cast<std::uint32_t>(out_.size());
            const int rc = isal_inflate(&st);
            const std::uint64_t at = fed_ + (in.size() - st.avail_in);
            if (rc < 0) return fail_corrupt(fmt::format("{}: {} at compressed offset {:#x}", name_, cmp_isal_describe(rc), at));
            const std::size_t produced = out_.size() - st.avail_out;
            if (produced > 0) HSDK_TRYV(emit(std::span<const std::byte>(out_.data(), produced)));
            if (st.block_state == ISAL_BLOCK_FINISH) {
                member_done_ = true;
                continue;
            }
            if (produced == 0 && st.avail_in == 0) return success();
            if (produced == 0 && st.avail_in == in_before)
                return fail_corrupt(fmt::format("{}: gzip data at compressed offset {:#x} makes no progress (the data is corrupt)", name_, at));
        }
    }

    Result<void> feed_zstd(std::span<const std::byte> in, const Emit &emit) {
        if (zs_ == nullptr) return fail(Errc::no_memory, "cannot allocate a zstd decompression context");
        ZSTD_inBuffer ib{in.data(), in.size(), 0};
        while (true) {
            ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
            const std::size_t before = ib.pos;
            const std::size_t rc = ZSTD_decompressStream(zs_, &ob, &ib);
            if (ZSTD_isError(rc)) return fail(cmp_zstd_error(rc, name_, fed_ + ib.pos));
            // A call that neither took input nor gave output says nothing (after a frame's end it
            // would announce the next frame's header).
            if (ib.pos != before || ob.pos > 0) zs_last_ = rc;
            if (ob.pos > 0) HSDK_TRYV(emit(std::span<const std::byte>(out_.data(), ob.pos)));
            if (ib.pos == ib.size && ob.pos < ob.size) return success();
            if (ob.pos == 0 && ib.pos == before) return success();  // nothing more to do with this input
        }
    }

    Result<void> feed_lz4(std::span<const std::byte> in, const Emit &emit) {
        if (lz_ == nullptr) return fail(Errc::no_memory, "cannot allocate an lz4 decompression context");
        std::size_t pos = 0;
        while (true) {
            std::size_t src = in.size() - pos, dst = out_.size();
            const std::size_t rc = LZ4F_decompress(lz_, out_.data(), &dst, in.data() + pos, &src, nullptr);
            if (LZ4F_isError(rc)) return fail(cmp_lz4_error(rc, name_, fed_ + pos));
            pos += src;
            if (src > 0 || dst > 0) lz_last_ = rc;
            if (dst > 0) HSDK_TRYV(emit(std::span<const std::byte>(out_.data(), dst)));
            if (pos == in.size() && dst < out_.size()) return success();
            if (src == 0 && dst == 0) return success();
        }
    }

    Compression kind_;
    std::string name_;
    std::vector<std::byte> out_;
    std::uint64_t fed_ = 0;  // compressed bytes fed before the current piece
    std::unique_ptr<inflate_state> gz_;
    bool member_done_ = false;
    ZSTD_DCtx *zs_ = nullptr;
    std::size_t zs_last_ = 1;  // 0 right after a frame ended
    LZ4F_dctx *lz_ = nullptr;
    std::size_t lz_last_ = 1;
};

// Feeds the whole of `compressed` through a StreamDecoder in order.
Result<void> decode_stream(const ByteSource &compressed, Compression kind, const std::string &name, const CancelToken &stop,
                           const CancelToken &cancel, const StreamDecoder::Emit &emit) {
    StreamDecoder decoder(kind, name);
    std::vector<std::byte> buf(cmp_stream_chunk);
    const std::uint64_t size = compressed.size();
    for (std::uint64_t at = 0; at < size;) {
        HSDK_TRYV(stop.check());
        HSDK_TRYV(cancel.check());
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - at));
        HSDK_TRYV(compressed.read_exact(at, std::span<std::byte>(buf.data(), n)));
        HSDK_TRYV(decoder.feed(std::span<const std::byte>(buf.data(), n), emit));
        at += n;
    }
    return decoder.finish(emit);
}

// ---- walking the headers -----------------------------------------------------------------------

// A frame (zstd, lz4) or member (gzip) found in the stream; ulen empty when its header does not say.
struct Frame {
    std::uint64_t coff = 0, clen = 0;
    std::optional<std::uint64_t> ulen;
};

// A unit of the index: whole consecutive frames, decoded together.
struct Unit {
    std::uint64_t coff = 0, clen = 0;  // compressed bytes
    std::uint64_t uoff = 0, ulen = 0;  // decompressed bytes
};

// Collects the frames of a walk into units, and the stream's size while every frame gives its own.
class IndexBuilder {
public:
    IndexBuilder(std::string name, std::uint64_t max_unit, std::uint64_t group)
        : name_(std::move(name)), max_unit_(max_unit), group_(std::min(group, max_unit)) {}

    Result<void> add(const Frame &f) {
        ++frames_;
        if (total_) {
            if (!f.ulen) total_.reset();
            else if (*f.ulen > std::numeric_limits<std::uint64_t>::max() - *total_)
                return fail_corrupt(fmt::format("{}: the frames' sizes add up to more than 2^64 bytes", name_));
            else *total_ += *f.ulen;
        }
        if (!indexable_) return success();
        if (!f.ulen) return not_indexable(fmt::format("the frame at compressed offset {:#x} does not give its decompressed size", f.coff));
        if (*f.ulen > max_unit_)
            return not_indexable(fmt::format("the frame at compressed offset {:#x} holds {} bytes, more than the {} indexed", f.coff, *f.ulen,
                                             max_unit_));
        if (f.clen > cmp_clen_bound(*f.ulen))
            return not_indexable(fmt::format("the frame at compressed offset {:#x} takes {} bytes for {}", f.coff, f.clen, *f.ulen));
        if (!units_.empty()) {
            Unit &u = units_.back();
            if (u.coff + u.clen == f.coff && u.ulen + *f.ulen <= group_) {
                u.clen += f.clen;
                u.ulen += *f.ulen;
                next_uoff_ += *f.ulen;
                return success();
            }
        }
        units_.push_back(Unit{f.coff, f.clen, next_uoff_, *f.ulen});
        next_uoff_ += *f.ulen;
        return success();
    }

    // The walk stopped before the end (a gzip member without a size field): nothing is known.
    void stop(std::string why) {
        total_.reset();
        (void)not_indexable(std::move(why));
    }

    [[nodiscard]] bool indexable() const noexcept { return indexable_; }
    [[nodiscard]] const std::string &why_not() const noexcept { return why_not_; }
    [[nodiscard]] std::optional<std::uint64_t> total() const noexcept { return total_; }
    [[nodiscard]] std::uint64_t frames() const noexcept { return frames_; }
    std::vector<Unit> take_units() { return std::move(units_); }

private:
    Result<void> not_indexable(std::string why) {
        if (indexable_) why_not_ = std::move(why);
        indexable_ = false;
        std::vector<Unit>().swap(units_);
        return success();
    }

    std::string name_;
    std::uint64_t max_unit_, group_;
    std::vector<Unit> units_;
    std::uint64_t next_uoff_ = 0;
    std::optional<std::uint64_t> total_ = std::uint64_t{0};
    std::uint64_t frames_ = 0;
    bool indexable_ = true;
    std::string why_not_;
};

// Small reads of the compressed source for the walkers: a buffer that grows while the reads stay
// close together (block headers every few KiB) and shrinks back for long hops (one header per
// 4 MiB unit), so neither a local nor a remote source is read much beyond the headers.
class PeekReader {
public:
    explicit PeekReader(const ByteSource &src) : src_(src), size_(src.size()) {}

    // Up to n bytes at `offset` (fewer only at the end of the source), valid until the next call.
    Result<std::span<const std::byte>> at(std::uint64_t offset, std::size_t n) {
        if (offset >= size_) return std::span<const std::byte>();
        n = static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - offset));
        if (offset >= buf_off_ && offset + n <= buf_off_ + buf_.size()) return std::span<const std::byte>(buf_.data() + (offset - buf_off_), n);
        const bool near = offset >= buf_off_ && offset <= buf_off_ + buf_.size() + 2 * window_;
        window_ = near ? std::min(window_ * 2, cmp_mib) : 4 * cmp_kib;
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(std::max(n, window_), size_ - offset));
        buf_.resize(want);
        buf_off_ = offset;
        if (auto r = src_.read_exact(offset, buf_); !r) {
            buf_.clear();
            return fail(r.error());
        }
        return std::span<const std::byte>(buf_.data(), n);
    }

private:
    const ByteSource &src_;
    std::uint64_t size_;
    std::vector<std::byte> buf_;
    std::uint64_t buf_off_ = 0;
    std::size_t window_ = 4 * cmp_kib;
};

Result<void> walk_gzip(const ByteSource &src, const std::string &name, IndexBuilder &b) {
    PeekReader peek(src);
    const std::uint64_t size = src.size();
    std::uint64_t pos = 0;
    while (pos < size) {
        HSDK_TRY(auto h, peek.at(pos, 12));
        if (h.size() < 2 && cmp_magic_prefix(h, 0x8b1f))
            return fail_corrupt(fmt::format("{}: the gzip member at compressed offset {:#x} is cut short (truncated)", name, pos));
        if (h.size() < 2 || h[0] != std::byte{0x1f} || h[1] != std::byte{0x8b})
            return fail_corrupt(fmt::format("{}: {} bytes after the last gzip member at compressed offset {:#x} (trailing garbage)", name,
                                            size - pos, pos));
        if (h.size() < 12) return fail_corrupt(fmt::format("{}: the gzip member at compressed offset {:#x} is cut short (truncated)", name, pos));
        const auto flags = std::to_integer<unsigned>(h[3]);
        if (h[2] != std::byte{8} || (flags & 0xE0) != 0) {
            b.stop(fmt::format("the gzip member at compressed offset {:#x} has an unusual header", pos));
            return success();  // the stream decoder says what is wrong with it
        }
        if ((flags & 0x04) == 0) {
            b.stop(fmt::format("the gzip member at compressed offset {:#x} has no size field (written by gzip or pigz)", pos));
            return success();
        }
        const std::size_t xlen = cmp_le16(h.data() + 10);
        HSDK_TRY(auto x, peek.at(pos + 12, xlen));
        if (x.size() < xlen) return fail_corrupt(fmt::format("{}: the gzip member at compressed offset {:#x} is cut short (truncated)", name, pos));
        std::optional<std::uint64_t> clen, ulen;
        bool bgzf = false;
        for (std::size_t i = 0; i + 4 <= xlen;) {
            const std::size_t len = cmp_le16(x.data() + i + 2);
            if (i + 4 + len > xlen) break;
            const std::byte *field = x.data() + i + 4;
            if (x[i] == std::byte{'H'} && x[i + 1] == std::byte{'S'} && len >= 8) {
                clen = cmp_le32(field);
                ulen = cmp_le32(field + 4);
                break;
            }
            if (x[i] == std::byte{'B'} && x[i + 1] == std::byte{'C'} && len == 2) {
                clen = std::uint64_t{cmp_le16(field)} + 1;
                bgzf = true;
                break;
            }
            i += 4 + len;
        }
        if (!clen) {
            b.stop(fmt::format("the gzip member at compressed offset {:#x} has no size field", pos));
            return success();
        }
        if (*clen < 12 + xlen + 8 + 2)
            return fail_corrupt(fmt::format("{}: the gzip member at compressed offset {:#x} gives an impossible length ({} bytes)", name, pos, *clen));
        if (*clen > size - pos)
            return fail_corrupt(fmt::format("{}: the gzip member at compressed offset {:#x} is {} bytes long but the stream ends {} bytes after "
                                            "it starts (truncated)",
                                            name, pos, *clen, size - pos));
        if (bgzf) {
            HSDK_TRY(auto t, peek.at(pos + *clen - 4, 4));
            ulen = cmp_le32(t.data());
        }
        HSDK_TRYV(b.add(Frame{pos, *clen, ulen}));
        pos += *clen;
    }
    return success();
}

struct ZstdHeader {
    std::size_t size = 0;  // magic included
    std::optional<std::uint64_t> content;
    bool checksum = false;
    std::uint32_t dictionary = 0;
};

// The frame header at the start of `h` (which holds up to 18 bytes); nullopt when `h` is shorter
// than the header.
Result<std::optional<ZstdHeader>> parse_zstd_header(std::span<const std::byte> h, const std::string &name, std::uint64_t pos) {
    if (h.size() < 5) return std::optional<ZstdHeader>();
    const auto fhd = std::to_integer<unsigned>(h[4]);
    if ((fhd & 0x08) != 0)
        return fail_corrupt(fmt::format("{}: the zstd frame at compressed offset {:#x} sets a reserved header bit", name, pos));
    const unsigned fcs_flag = fhd >> 6, did_flag = fhd & 3;
    const bool single = (fhd & 0x20) != 0;
    static constexpr std::size_t did_sizes[4] = {0, 1, 2, 4};
    static constexpr std::size_t fcs_sizes[4] = {0, 2, 4, 8};
    const std::size_t fcs_size = fcs_flag == 0 ? (single ? 1 : 0) : fcs_sizes[fcs_flag];
    std::size_t p = 5 + (single ? 0 : 1);
    ZstdHeader out;
    out.checksum = (fhd & 0x04) != 0;
    if (h.size() < p + did_sizes[did_flag] + fcs_size) return std::optional<ZstdHeader>();
    for (std::size_t i = 0; i < did_sizes[did_flag]; ++i) out.dictionary |= std::to_integer<std::uint32_t>(h[p + i]) << (8 * i);
    p += did_sizes[did_flag];
    if (fcs_size > 0) {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < fcs_size; ++i) v |= std::to_integer<std::uint64_t>(h[p + i]) << (8 * i);
        if (fcs_size == 2) v += 256;
        out.content = v;
    }
    out.size = p + fcs_size;
    return std::optional<ZstdHeader>(out);
}

// Skips a skippable frame at `pos` (magic already read); returns its end.
Result<std::uint64_t> skip_skippable(PeekReader &peek, const std::string &name, std::uint64_t pos, std::uint64_t size) {
    HSDK_TRY(auto s, peek.at(pos, 8));
    if (s.size() < 8 || cmp_le32(s.data() + 4) > size - pos - 8)
        return fail_corrupt(fmt::format("{}: the skippable frame at compressed offset {:#x} is cut short (truncated)", name, pos));
    return pos + 8 + cmp_le32(s.data() + 4);
}

Result<void> walk_zstd(const ByteSource &src, const std::string &name, IndexBuilder &b) {
    PeekReader peek(src);
    const std::uint64_t size = src.size();
    std::uint64_t pos = 0;
    auto truncated = [&](std::uint64_t at) {
        return fail_corrupt(fmt::format("{}: the zstd frame at compressed offset {:#x} is cut short at {:#x} (truncated)", name, at, size));
    };
    while (pos < size) {
        HSDK_TRY(auto h, peek.at(pos, 18));
        if (h.size() < 4 && (cmp_magic_prefix(h, cmp_zstd_magic) || cmp_magic_prefix(h, cmp_skippable_magic))) return truncated(pos);
        if (h.size() < 4) return fail_corrupt(fmt::format("{}: {} bytes after the last zstd frame at compressed offset {:#x} (trailing garbage)", name, h.size(), pos));
        const std::uint32_t magic = cmp_le32(h.data());
        if (cmp_is_skippable(magic)) {
            HSDK_TRY(pos, skip_skippable(peek, name, pos, size));
            continue;
        }
        if (magic != cmp_zstd_magic)
            return fail_corrupt(fmt::format("{}: {} bytes after the last zstd frame at compressed offset {:#x} are not a zstd frame (trailing "
                                            "garbage)",
                                            name, size - pos, pos));
        HSDK_TRY(auto header, parse_zstd_header(h, name, pos));
        if (!header) return truncated(pos);
        if (header->dictionary != 0)
            return fail_unsupported(fmt::format("{}: the zstd frame at compressed offset {:#x} needs dictionary {}", name, pos, header->dictionary));
        std::uint64_t q = pos + header->size, blocks = 0;
        while (true) {
            HSDK_TRY(auto bh, peek.at(q, 3));
            if (bh.size() < 3) return truncated(pos);
            const std::uint32_t v = cmp_le24(bh.data());
            const unsigned type = (v >> 1) & 3;
            const std::uint32_t bsize = v >> 3;
            if (type == 3) return fail_corrupt(fmt::format("{}: zstd block at compressed offset {:#x} has the reserved type", name, q));
            if (bsize > cmp_zstd_block_max)
                return fail_corrupt(fmt::format("{}: zstd block at compressed offset {:#x} claims {} bytes (at most 128 KiB)", name, q, bsize));
            const std::uint64_t body = type == 1 ? 1 : bsize;
            if (body > size - q - 3) return truncated(pos);
            q += 3 + body;
            ++blocks;
            if ((v & 1) != 0) break;
        }
        if (header->checksum) {
            if (size - q < 4) return truncated(pos);
            q += 4;
        }
        if (header->content && *header->content > cmp_mul_saturating(blocks, cmp_zstd_block_max))
            return fail_corrupt(fmt::format("{}: the zstd frame at compressed offset {:#x} claims {} bytes but its {} blocks hold at most {}", name,
                                            pos, *header->content, blocks, blocks * cmp_zstd_block_max));
        HSDK_TRYV(b.add(Frame{pos, q - pos, header->content}));
        pos = q;
    }
    return success();
}

// The frames a seek table (zstd's seekable format; our lz4 streams end with the same skippable
// frame) lists, when the stream ends with a table whose sizes add up to the stream exactly; false
// otherwise, and then the frames are walked.
Result<bool> read_seek_table(const ByteSource &src, IndexBuilder &b) {
    const std::uint64_t size = src.size();
    if (size < 8 + cmp_seek_footer_size) return false;
    std::array<std::byte, cmp_seek_footer_size> footer{};
    HSDK_TRYV(src.read_exact(size - footer.size(), footer));
    if (cmp_le32(footer.data() + 5) != cmp_seekable_magic) return false;
    const std::uint64_t count = cmp_le32(footer.data());
    const auto descriptor = std::to_integer<unsigned>(footer[4]);
    if ((descriptor & 0x7C) != 0 || count == 0) return false;
    const std::uint64_t entry = (descriptor & 0x80) != 0 ? 12 : 8;
    const std::uint64_t table = 8 + count * entry + cmp_seek_footer_size;
    if (table > size || table > cmp_seek_table_max) return false;
    std::vector<std::byte> bytes(static_cast<std::size_t>(table - cmp_seek_footer_size));
    HSDK_TRYV(src.read_exact(size - table, bytes));
    if (cmp_le32(bytes.data()) != cmp_seek_table_magic || cmp_le32(bytes.data() + 4) != table - 8) return false;
    std::uint64_t sum = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::uint32_t c = cmp_le32(bytes.data() + 8 + i * entry);
        if (c == 0) return false;
        sum += c;
    }
    if (sum != size - table) return false;
    std::uint64_t coff = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        const std::byte *e = bytes.data() + 8 + i * entry;
        HSDK_TRYV(b.add(Frame{coff, cmp_le32(e), std::uint64_t{cmp_le32(e + 4)}}));
        coff += cmp_le32(e);
    }
    return true;
}

Result<void> walk_lz4(const ByteSource &src, const std::string &name, IndexBuilder &b) {
    PeekReader peek(src);
    const std::uint64_t size = src.size();
    std::uint64_t pos = 0;
    auto truncated = [&](std::uint64_t at) {
        return fail_corrupt(fmt::format("{}: the lz4 frame at compressed offset {:#x} is cut short at {:#x} (truncated)", name, at, size));
    };
    while (pos < size) {
        HSDK_TRY(auto h, peek.at(pos, 19));
        if (h.size() < 4 && (cmp_magic_prefix(h, cmp_lz4_magic) || cmp_magic_prefix(h, cmp_skippable_magic))) return truncated(pos);
        if (h.size() < 4) return fail_corrupt(fmt::format("{}: {} bytes after the last lz4 frame at compressed offset {:#x} (trailing garbage)", name, h.size(), pos));
        const std::uint32_t magic = cmp_le32(h.data());
        if (cmp_is_skippable(magic)) {
            HSDK_TRY(pos, skip_skippable(peek, name, pos, size));
            continue;
        }
        if (magic == cmp_lz4_legacy_magic)
            return fail_unsupported(fmt::format("{}: the lz4 legacy format (lz4 -l) at compressed offset {:#x}", name, pos));
        if (magic != cmp_lz4_magic)
            return fail_corrupt(fmt::format("{}: {} bytes after the last lz4 frame at compressed offset {:#x} are not an lz4 frame (trailing "
                                            "garbage)",
                                            name, size - pos, pos));
        if (h.size() < 7) return truncated(pos);
        const auto flg = std::to_integer<unsigned>(h[4]), bd = std::to_integer<unsigned>(h[5]);
        if ((flg >> 6) != 1 || (flg & 0x02) != 0 || (bd & 0x8F) != 0 || ((bd >> 4) & 7) < 4)
            return fail_corrupt(fmt::format("{}: the lz4 frame at compressed offset {:#x} has an invalid descriptor", name, pos));
        const bool block_checksum = (flg & 0x10) != 0, has_size = (flg & 0x08) != 0, content_checksum = (flg & 0x04) != 0;
        if ((flg & 0x01) != 0)
            return fail_unsupported(fmt::format("{}: the lz4 frame at compressed offset {:#x} needs a dictionary", name, pos));
        const std::size_t header = 4 + 2 + (has_size ? 8 : 0) + 1;
        if (h.size() < header) return truncated(pos);
        std::optional<std::uint64_t> content;
        if (has_size) content = cmp_le64(h.data() + 6);
        const std::uint64_t block_max = std::uint64_t{1} << (8 + 2 * ((bd >> 4) & 7));
        std::uint64_t q = pos + header, blocks = 0;
        while (true) {
            HSDK_TRY(auto bh, peek.at(q, 4));
            if (bh.size() < 4) return truncated(pos);
            const std::uint32_t v = cmp_le32(bh.data());
            q += 4;
            if (v == 0) break;  // the end mark
            const std::uint64_t bsize = v & 0x7FFFFFFFu;
            if (bsize > block_max)
                return fail_corrupt(fmt::format("{}: lz4 block at compressed offset {:#x} claims {} bytes (its frame's blocks hold at most {})", name,
                                                q - 4, bsize, block_max));
            const std::uint64_t body = bsize + (block_checksum ? 4 : 0);
            if (body > size - q) return truncated(pos);
            q += body;
            ++blocks;
        }
        if (content_checksum) {
            if (size - q < 4) return truncated(pos);
            q += 4;
        }
        if (!content && blocks == 0) content = 0;  // nothing but the end mark
        if (content && *content > cmp_mul_saturating(blocks, block_max))
            return fail_corrupt(fmt::format("{}: the lz4 frame at compressed offset {:#x} claims {} bytes but its {} blocks hold at most {}", name, pos,
                                            *content, blocks, cmp_mul_saturating(blocks, block_max)));
        HSDK_TRYV(b.add(Frame{pos, q - pos, content}));
        pos = q;
    }
    return success();
}

// ---- the sources -------------------------------------------------------------------------------

// What open_decompressed_source returns, so decompressed_info() can recognise it.
class InfoSource : public ByteSource {
public:
    [[nodiscard]] virtual DecompressedInfo info() const = 0;
    std::string native_format() const override { return native_format_; }
    void set_native_format(std::string format) { native_format_ = std::move(format); }

private:
    std::string native_format_;
};

// A buffer for a decoded unit: not zero-filled when made, and recycled from evicted units, so a
// unit costs neither a memset nor fresh pages.
struct UnitBuffer {
    std::unique_ptr<std::byte[]> bytes;
    std::size_t capacity = 0;
};

// A decoded unit, shared by the cache and the reads copying from it.
struct Decoded {
    UnitBuffer buffer;
    std::size_t size = 0;
    std::vector<bool> zero;  // per cmp_zero_block of the unit: all zeros
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {buffer.bytes.get(), size}; }
};

// A unit being decoded or decoded: whoever claims it decodes it (a read-ahead task, or a read that
// finds it unclaimed), the others wait for it.
struct Slot {
    bool claimed = false, done = false, ahead = false;
    std::shared_ptr<Decoded> data;
    std::optional<Error> error;
    std::uint64_t used = 0;  // LRU tick
};

class IndexedSource final : public InfoSource, public std::enable_shared_from_this<IndexedSource> {
public:
    IndexedSource(std::shared_ptr<const ByteSource> base, Compression kind, std::string name, std::vector<Unit> units,
                  const DecompressOptions &o)
        : base_(std::move(base)), kind_(kind), name_(std::move(name)), units_(std::move(units)), cancel_(o.cancel) {
        size_ = units_.empty() ? 0 : units_.back().uoff + units_.back().ulen;
        const unsigned threads = core::worker_parallelism(o.threads);
        ahead_ = threads > 1 ? threads : 0;
        std::uint64_t largest = 0;
        for (const Unit &u : units_) largest = std::max(largest, u.ulen);
        budget_ = std::max<std::uint64_t>(o.cache_bytes, (ahead_ + 2) * largest);
    }

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return size_; }
    std::string identity() const override { return base_->identity() + "#decompressed"; }
    std::optional<std::uint64_t> allocated_size() const override { return base_->allocated_size(); }
    Result<std::shared_ptr<ByteSource>> open_reference(const std::string &reference, bool allow_external, std::string_view what) const override {
        return base_->open_reference(reference, allow_external, what);
    }
    DecompressedInfo info() const override { return DecompressedInfo{kind_, true, units_.size(), base_->size()}; }

    // Decodes the first unit with data, so that a stream that is not what its headers say fails
    // at open rather than at the first read.
    Result<void> prime() const {
        for (std::size_t i = 0; i < units_.size(); ++i) {
            if (units_[i].ulen == 0 && i + 1 < units_.size()) continue;
            HSDK_TRY(auto d, get(i));
            (void)d;
            return success();
        }
        return success();
    }

    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= size_ || buf.empty()) return std::size_t{0};
        HSDK_TRYV(cancel_.check());
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset));
        const std::size_t first = find(offset), last = find(offset + n - 1);
        bool forward = false;
        {
            std::lock_guard lock(m_);
            forward = last_ == npos ? first == 0 : first >= last_ && first <= last_ + 1;
            last_ = last;
        }
        // Units after the one being copied are queued on the worker pool, up to ahead_ at a time:
        // the read's own later units (this thread takes any no pool thread has started) and, for a
        // reader moving forward, the units after the read.
        const std::size_t horizon = forward ? last + 1 + ahead_ : last + 1;
        std::size_t done = 0;
        for (std::size_t j = first; done < n; ++j) {
            const Unit &u = units_[j];
            if (u.ulen == 0) continue;
            if (ahead_ > 0) {
                std::lock_guard lock(m_);
                schedule_locked(j + 1, horizon);
            }
            HSDK_TRY(auto d, get(j));
            const std::uint64_t at = offset + done;
            const std::size_t skip = static_cast<std::size_t>(at - u.uoff);
            const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n - done, u.ulen - skip));
            std::memcpy(buf.data() + done, d->bytes().data() + skip, take);
            done += take;
        }
        return n;
    }

    // Zero runs of units already decoded (in the cache); everything else is data.
    Result<std::vector<ByteRun>> allocation(std::uint64_t offset, std::uint64_t length) const override {
        std::vector<ByteRun> out;
        if (offset >= size_ || length == 0) return out;
        const std::uint64_t end = offset + std::min(length, size_ - offset);
        auto push = [&](std::uint64_t from, std::uint64_t to, bool data) {
            if (to <= from) return;
            if (!out.empty() && out.back().data == data && out.back().offset + out.back().length == from) out.back().length += to - from;
            else out.push_back(ByteRun{from, to - from, data});
        };
        for (std::size_t j = find(offset); j < units_.size() && units_[j].uoff < end; ++j) {
            const Unit &u = units_[j];
            const std::uint64_t from = std::max(offset, u.uoff), to = std::min(end, u.uoff + u.ulen);
            std::shared_ptr<const Decoded> d;
            {
                std::lock_guard lock(m_);
                if (auto it = slots_.find(j); it != slots_.end() && it->second->done) d = it->second->data;
            }
            if (!d) {
                push(from, to, true);
                continue;
            }
            for (std::uint64_t at = from; at < to;) {
                const std::size_t block = static_cast<std::size_t>((at - u.uoff) / cmp_zero_block);
                const std::uint64_t block_end = std::min<std::uint64_t>(to, u.uoff + (block + 1) * std::uint64_t{cmp_zero_block});
                push(at, block_end, !d->zero[block]);
                at = block_end;
            }
        }
        return out;
    }

private:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    // The unit holding byte `offset` (< size_): the last unit starting at or before it (units of no
    // bytes share their start with the next unit and come before it).
    std::size_t find(std::uint64_t offset) const {
        auto it = std::upper_bound(units_.begin(), units_.end(), offset, [](std::uint64_t o, const Unit &u) { return o < u.uoff; });
        return static_cast<std::size_t>(it - units_.begin()) - 1;
    }

    // Queues units [from, to) that are neither cached nor queued on the worker pool, keeping at
    // most ahead_ queued.
    void schedule_locked(std::size_t from, std::size_t to) const {
        to = std::min(to, units_.size());
        for (std::size_t j = from; j < to && queued_ < ahead_; ++j) {
            if (units_[j].ulen == 0 || slots_.count(j) != 0) continue;
            auto slot = std::make_shared<Slot>();
            slot->ahead = true;
            slots_.emplace(j, slot);
            ++queued_;
            core::Executor::instance().workers().post([weak = weak_from_this(), j, slot] {
                if (auto self = weak.lock()) self->run_ahead(j, slot);
            });
        }
    }

    void run_ahead(std::size_t j, const std::shared_ptr<Slot> &slot) const {
        {
            std::lock_guard lock(m_);
            if (slot->claimed || slot->done) return;
            slot->claimed = true;
        }
        complete(j, slot, decode(j));
    }

    // The decoded unit j: from the cache, decoded here, or waited for while another thread decodes it.
    Result<std::shared_ptr<const Decoded>> get(std::size_t j) const {
        std::unique_lock lock(m_);
        auto it = slots_.find(j);
        std::shared_ptr<Slot> slot;
        if (it != slots_.end()) slot = it->second;
        else slot = slots_.emplace(j, std::make_shared<Slot>()).first->second;
        while (true) {
            if (slot->done) {
                if (!slot->data) return fail(*slot->error);
                slot->used = ++tick_;
                return std::shared_ptr<const Decoded>(slot->data);
            }
            if (!slot->claimed) {
                slot->claimed = true;
                lock.unlock();
                complete(j, slot, decode(j));
                lock.lock();
                continue;
            }
            cv_.wait(lock);
        }
    }

    void complete(std::size_t j, const std::shared_ptr<Slot> &slot, Result<std::shared_ptr<Decoded>> r) const {
        {
            std::lock_guard lock(m_);
            slot->done = true;
            if (slot->ahead) --queued_;
            if (r) {
                slot->data = std::move(r).value();
                slot->used = ++tick_;
                cached_ += slot->data->size;
                evict_locked();
            } else {
                // Waiters see the error; the next read tries again (a network error may pass).
                slot->error = r.error();
                if (auto it = slots_.find(j); it != slots_.end() && it->second == slot) slots_.erase(it);
            }
        }
        cv_.notify_all();
    }

    // Drops the least recently used decoded units beyond the budget.
    void evict_locked() const {
        while (cached_ > budget_) {
            auto victim = slots_.end();
            for (auto it = slots_.begin(); it != slots_.end(); ++it)
                if (it->second->data && (victim == slots_.end() || it->second->used < victim->second->used)) victim = it;
            if (victim == slots_.end()) return;
            auto &data = victim->second->data;
            cached_ -= data->size;
            // Nobody else holds it (copies are taken under the lock): its buffer serves the next unit.
            if (data.use_count() == 1 && spare_.size() < ahead_ + 2) spare_.push_back(std::move(data->buffer));
            slots_.erase(victim);
        }
    }

    // Reads and decodes unit j whole, verified; nothing of it is used unless this succeeds.
    Result<std::shared_ptr<Decoded>> decode(std::size_t j) const {
        const Unit &u = units_[j];
        const auto clen = static_cast<std::size_t>(u.clen), ulen = static_cast<std::size_t>(u.ulen);
        try {
            // The compressed bytes, in a buffer of this source's (not a thread's: a source nested in
            // another decodes re-entrantly on one thread), given back for the next unit.
            std::vector<std::byte> in;
            auto give_back = [&] {
                std::lock_guard lock(m_);
                if (spare_in_.size() < ahead_ + 2) spare_in_.push_back(std::move(in));
            };
            auto d = std::make_shared<Decoded>();
            {
                std::lock_guard lock(m_);
                if (!spare_in_.empty()) {
                    in = std::move(spare_in_.back());
                    spare_in_.pop_back();
                }
                auto fit = std::find_if(spare_.begin(), spare_.end(), [&](const UnitBuffer &b) { return b.capacity >= ulen; });
                if (fit != spare_.end()) {
                    d->buffer = std::move(*fit);
                    spare_.erase(fit);
                }
            }
            if (!d->buffer.bytes) d->buffer = UnitBuffer{std::make_unique_for_overwrite<std::byte[]>(std::max<std::size_t>(ulen, 1)), ulen};
            d->size = ulen;
            if (in.size() < clen) in.resize(clen);
            const std::span<std::byte> compressed(in.data(), clen);
            const std::span<std::byte> out(d->buffer.bytes.get(), ulen);
            auto r = base_->read_exact(u.coff, compressed);
            if (r) r = cmp_decode_unit(kind_, compressed, out, name_, u.coff);
            if (clen <= 8 * cmp_mib) give_back();  // larger ones are not kept
            HSDK_TRYV(std::move(r));
            d->zero.resize((ulen + cmp_zero_block - 1) / cmp_zero_block);
            for (std::size_t b = 0; b < d->zero.size(); ++b) {
                const std::size_t from = b * cmp_zero_block;
                d->zero[b] = is_all_zero(std::span<const std::byte>(out).subspan(from, std::min(cmp_zero_block, ulen - from)));
            }
            return d;
        } catch (const std::bad_alloc &) {
            return fail(Errc::no_memory, fmt::format("{}: out of memory decoding a {} unit of {} bytes", name_, cmp_name(kind_), u.ulen));
        }
    }

    std::shared_ptr<const ByteSource> base_;
    Compression kind_;
    std::string name_;
    std::vector<Unit> units_;
    std::uint64_t size_ = 0;
    CancelToken cancel_;
    unsigned ahead_ = 0;
    std::uint64_t budget_ = 0;

    mutable std::mutex m_;
    mutable std::condition_variable cv_;
    mutable std::unordered_map<std::size_t, std::shared_ptr<Slot>> slots_;
    mutable std::vector<UnitBuffer> spare_;  // buffers of evicted units
    mutable std::vector<std::vector<std::byte>> spare_in_;  // compressed-input buffers
    mutable std::uint64_t cached_ = 0, tick_ = 0;
    mutable unsigned queued_ = 0;  // read-ahead slots not yet done
    mutable std::size_t last_ = npos;  // the last unit of the latest read
};

// A stream read forward: a tar stream source (tar = false) over a StreamDecoder, named like the
// compressed source.
class StreamedSource final : public InfoSource {
public:
    StreamedSource(std::shared_ptr<const ByteSource> base, std::shared_ptr<ByteSource> inner, Compression kind, std::string name)
        : base_(std::move(base)), inner_(std::move(inner)), kind_(kind), name_(std::move(name)) {}

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return inner_->size(); }
    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override { return inner_->read_some(offset, buf); }
    std::string identity() const override { return base_->identity() + "#decompressed"; }
    std::optional<std::uint64_t> allocated_size() const override { return base_->allocated_size(); }
    Result<std::shared_ptr<ByteSource>> open_reference(const std::string &reference, bool allow_external, std::string_view what) const override {
        return base_->open_reference(reference, allow_external, what);
    }
    DecompressedInfo info() const override { return DecompressedInfo{kind_, false, 0, base_->size()}; }

private:
    std::shared_ptr<const ByteSource> base_;
    std::shared_ptr<ByteSource> inner_;
    Compression kind_;
    std::string name_;
};

// A unit waiting to be compressed: whoever claims it (a pool thread, or the writer when it needs
// the unit and no thread has started on it) compresses it.
struct CompressTask {
    Compression kind = Compression::none;
    int level = 0;
    std::size_t unit = 0;
    std::vector<std::byte> input, output;  // output: the compressed unit in its first output_size bytes
    std::size_t output_size = 0;
    Result<void> result = success();
    std::mutex m;
    std::condition_variable cv;
    bool claimed = false, done = false;

    void run_if_unclaimed() {
        {
            std::lock_guard lock(m);
            if (claimed) return;
            claimed = true;
        }
        Result<void> r = success();
        try {
            auto n = cmp_compress_unit(kind, level, unit, input, output);
            if (n) output_size = n.value();
            else r = fail(n.error());
        } catch (const std::bad_alloc &) {
            r = fail(Errc::no_memory, fmt::format("out of memory compressing a unit of {} bytes", input.size()));
        }
        {
            std::lock_guard lock(m);
            result = std::move(r);
            done = true;
        }
        cv.notify_all();
    }

    Result<void> wait() {
        run_if_unclaimed();
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return done; });
        return result;
    }

    // The writer is gone: a pool thread that has not started finds nothing to do.
    void abandon() {
        std::lock_guard lock(m);
        claimed = true;
    }
};

}  // namespace compression_detail

// ---- opening -------------------------------------------------------------------------------------

Result<std::shared_ptr<ByteSource>> open_decompressed_source(std::shared_ptr<const ByteSource> compressed, const DecompressOptions &options) {
    using namespace compression_detail;
    std::string name = options.name.empty() ? compressed->name() : options.name;
    const std::uint64_t csize = compressed->size();
    std::array<std::byte, 4> magic{};
    const std::size_t got = static_cast<std::size_t>(std::min<std::uint64_t>(csize, magic.size()));
    HSDK_TRYV(compressed->read_exact(0, std::span<std::byte>(magic.data(), got)));
    const Compression kind = detect_compression(std::span<const std::byte>(magic.data(), got));
    if (kind == Compression::none)
        return fail(Errc::invalid_argument, fmt::format("'{}' is not compressed (no gzip, zstd or lz4 magic)", name));

    const std::uint64_t max_unit = std::max<std::uint64_t>(options.max_unit_bytes, 1);
    IndexBuilder index(name, max_unit, options.group_bytes);
    switch (kind) {
    case Compression::gzip: HSDK_TRYV(walk_gzip(*compressed, name, index)); break;
    case Compression::zstd: {
        IndexBuilder table(name, max_unit, options.group_bytes);
        HSDK_TRY(const bool has_table, read_seek_table(*compressed, table));
        if (has_table && table.indexable()) index = std::move(table);
        else HSDK_TRYV(walk_zstd(*compressed, name, index));
        break;
    }
    case Compression::lz4: {
        IndexBuilder table(name, max_unit, options.group_bytes);
        HSDK_TRY(const bool has_table, read_seek_table(*compressed, table));
        if (has_table && table.indexable()) index = std::move(table);
        else HSDK_TRYV(walk_lz4(*compressed, name, index));
        break;
    }
    case Compression::none: break;
    }

    if (index.indexable() && options.allow_index) {
        auto units = index.take_units();
        const std::size_t count = units.size();
        auto source = std::make_shared<IndexedSource>(compressed, kind, name, std::move(units), options);
        source->set_native_format(options.native_format);
        HSDK_TRYV(source->prime());
        hypersdk::log(LogLevel::debug, fmt::format("{}: {} stream of {} frames indexed as {} units for random access", name, cmp_name(kind),
                                         index.frames(), count));
        return std::shared_ptr<ByteSource>(std::move(source));
    }

    const std::string why = options.allow_index ? index.why_not() : std::string("indexing is turned off");
    std::uint64_t total = 0;
    if (index.total()) {
        total = *index.total();
        hypersdk::log(LogLevel::info, fmt::format("{}: {} stream read forward ({}); a read far behind the newest decodes it again from the start",
                                                  name, cmp_name(kind), why));
    } else {
        hypersdk::log(LogLevel::info, fmt::format("{}: {} stream read forward ({}); its headers do not give its size, decompressing it once to count",
                                        name, cmp_name(kind), why));
        HSDK_TRYV(decode_stream(*compressed, kind, name, CancelToken(), options.cancel, [&total](std::span<const std::byte> b) -> Result<void> {
            total += b.size();
            return success();
        }));
        hypersdk::log(LogLevel::info, fmt::format("{}: decompresses to {} bytes", name, total));
    }

    StreamReader reader = [compressed, kind, name, total, cancel = options.cancel](std::uint64_t offset, const StreamSink &sink,
                                                                                  const CancelToken &stop) -> Result<void> {
        std::uint64_t at = 0;
        auto emit = [&](std::span<const std::byte> b) -> Result<void> {
            if (b.size() > total - at)
                return fail_corrupt(fmt::format("{}: the {} stream decompresses to more than the {} bytes it held before", name, cmp_name(kind), total));
            const std::uint64_t end = at + b.size();
            if (end > offset) HSDK_TRYV(sink(b.subspan(static_cast<std::size_t>(offset > at ? offset - at : 0))));
            at = end;
            return success();
        };
        HSDK_TRYV(decode_stream(*compressed, kind, name, stop, cancel, emit));
        if (at != total)
            return fail_corrupt(fmt::format("{}: the {} stream decompresses to {} bytes, not the {} it held before (truncated)", name,
                                            cmp_name(kind), at, total));
        return success();
    };
    TarStreamOptions t;
    t.name = name;
    t.member.clear();
    t.tar = false;
    t.size = total;
    t.window_bytes = options.window_bytes;
    t.cancel = options.cancel;
    HSDK_TRY(auto inner, open_tar_stream_source(std::move(reader), std::move(t)));
    auto streamed = std::make_shared<StreamedSource>(std::move(compressed), std::move(inner), kind, std::move(name));
    streamed->set_native_format(options.native_format);
    return std::shared_ptr<ByteSource>(std::move(streamed));
}

Result<std::shared_ptr<ByteSource>> decompress_if_compressed(std::shared_ptr<ByteSource> source, const DecompressOptions &options) {
    std::array<std::byte, 4> magic{};
    const std::size_t got = static_cast<std::size_t>(std::min<std::uint64_t>(source->size(), magic.size()));
    HSDK_TRYV(source->read_exact(0, std::span<std::byte>(magic.data(), got)));
    if (detect_compression(std::span<const std::byte>(magic.data(), got)) == Compression::none) return source;
    return open_decompressed_source(std::move(source), options);
}

std::optional<DecompressedInfo> decompressed_info(const ByteSource &source) {
    if (const auto *s = dynamic_cast<const compression_detail::InfoSource *>(&source)) return s->info();
    return std::nullopt;
}

// ---- writing -------------------------------------------------------------------------------------

struct CompressWriter::State {
    Compression kind = Compression::none;
    int level = 0;
    CompressSink sink;
    unsigned threads = 1;
    std::size_t unit = compression_default_unit;
    std::size_t max_inflight = 0;
    std::vector<std::byte> pending;
    std::deque<std::shared_ptr<compression_detail::CompressTask>> inflight;
    std::vector<std::vector<std::byte>> spare, spare_out;  // input and output buffers of finished units, reused
    std::vector<std::pair<std::uint32_t, std::uint32_t>> seek;  // zstd, lz4: compressed and decompressed size per frame
    std::uint64_t in = 0, out = 0, units = 0;
    bool finished = false;
    std::optional<Error> failed;

    Result<void> failure(Error e) {
        if (!failed) failed = e;
        return fail(std::move(e));
    }

    Result<void> emit(std::span<const std::byte> bytes) {
        if (auto r = sink(bytes); !r) return failure(r.error());
        out += bytes.size();
        return success();
    }

    // Hands the oldest unit to the sink once compressed (compressing it here if no thread has).
    Result<void> retire() {
        auto task = std::move(inflight.front());
        inflight.pop_front();
        if (auto r = task->wait(); !r) return failure(r.error());
        if (kind == Compression::zstd || kind == Compression::lz4) {
            if (task->output_size > std::numeric_limits<std::uint32_t>::max() || seek.size() >= std::numeric_limits<std::uint32_t>::max())
                return failure(Error{Errc::internal, "seek table entry out of range"});
            seek.emplace_back(static_cast<std::uint32_t>(task->output_size), static_cast<std::uint32_t>(task->input.size()));
        }
        HSDK_TRYV(emit(std::span<const std::byte>(task->output.data(), task->output_size)));
        if (spare.size() <= max_inflight) {
            task->input.clear();
            spare.push_back(std::move(task->input));
        }
        if (spare_out.size() <= max_inflight) spare_out.push_back(std::move(task->output));
        return success();
    }

    Result<void> submit() {
        auto task = std::make_shared<compression_detail::CompressTask>();
        task->kind = kind;
        task->level = level;
        task->unit = unit;
        task->input = std::move(pending);
        if (!spare_out.empty()) {
            task->output = std::move(spare_out.back());
            spare_out.pop_back();
        }
        if (!spare.empty()) {
            pending = std::move(spare.back());
            spare.pop_back();
        } else {
            pending = {};
            pending.reserve(unit);
        }
        ++units;
        inflight.push_back(task);
        if (threads > 1) core::Executor::instance().workers().post([task] { task->run_if_unclaimed(); });
        while (inflight.size() > max_inflight) HSDK_TRYV(retire());
        return success();
    }

    ~State() {
        for (auto &t : inflight) t->abandon();
    }
};

CompressWriter::CompressWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
CompressWriter::CompressWriter(CompressWriter &&) noexcept = default;
CompressWriter &CompressWriter::operator=(CompressWriter &&) noexcept = default;
CompressWriter::~CompressWriter() = default;

Result<CompressWriter> CompressWriter::create(Compression compression, int level, CompressSink sink, unsigned threads, std::size_t unit_bytes) {
    if (!sink) return fail(Errc::invalid_argument, "compression: no sink given");
    if (unit_bytes < 64 * cmp_kib || unit_bytes > compression_max_unit)
        return fail(Errc::invalid_argument, fmt::format("compression unit of {} bytes: give 64 KiB to 64 MiB", unit_bytes));
    auto check = [&](int lo, int hi, int fallback) -> Result<void> {
        if (level == 0) level = fallback;
        if (level < lo || level > hi)
            return fail(Errc::invalid_argument,
                        fmt::format("{} level {}: give {} to {} (0 for the default, {})", compression_name(compression), level, lo, hi, fallback));
        return success();
    };
    switch (compression) {
    case Compression::gzip: HSDK_TRYV(check(1, 9, 6)); break;
    case Compression::zstd: HSDK_TRYV(check(1, 19, 3)); break;
    case Compression::lz4:
        if (level < 0 || level > 12) return fail(Errc::invalid_argument, fmt::format("lz4 level {}: give 0 to 12 (0 for the fast default)", level));
        break;
    case Compression::none: level = 0; break;
    }
    auto s = std::make_unique<State>();
    s->kind = compression;
    s->level = level;
    s->sink = std::move(sink);
    s->threads = core::worker_parallelism(threads);
    s->unit = unit_bytes;
    // Up to two units per thread in flight (the pool stays busy while the sink writes), their input
    // within 128 MiB (their output about as much again).
    s->max_inflight = s->threads <= 1 ? 0 : std::clamp<std::size_t>(2 * s->threads, 1, std::max<std::size_t>(1, (128 * cmp_mib) / unit_bytes));
    if (compression != Compression::none) s->pending.reserve(unit_bytes);
    return CompressWriter(std::move(s));
}

Result<void> CompressWriter::write(std::span<const std::byte> data) {
    State &s = *state_;
    if (s.failed) return fail(*s.failed);
    if (s.finished) return fail(Errc::invalid_argument, "compression: write after finish");
    if (s.kind == Compression::none) {
        s.in += data.size();
        return s.emit(data);
    }
    while (!data.empty()) {
        const std::size_t take = std::min(s.unit - s.pending.size(), data.size());
        s.pending.insert(s.pending.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
        data = data.subspan(take);
        s.in += take;
        if (s.pending.size() == s.unit) HSDK_TRYV(s.submit());
    }
    return success();
}

Result<void> CompressWriter::finish() {
    State &s = *state_;
    if (s.failed) return fail(*s.failed);
    if (s.finished) return success();
    if (s.kind != Compression::none) {
        // The last unit; an empty input is one empty unit, so the stream is never empty.
        if (!s.pending.empty() || s.units == 0) HSDK_TRYV(s.submit());
        while (!s.inflight.empty()) HSDK_TRYV(s.retire());
        // The seek table (not when so many frames would overflow its 32-bit size: readers walk them).
        if ((s.kind == Compression::zstd || s.kind == Compression::lz4) && s.seek.size() < (std::numeric_limits<std::uint32_t>::max() - 9) / 8) {
            const std::size_t count = s.seek.size();
            std::vector<std::byte> table(8 + count * 8 + cmp_seek_footer_size);
            cmp_put_le32(table.data(), cmp_seek_table_magic);
            cmp_put_le32(table.data() + 4, static_cast<std::uint32_t>(table.size() - 8));
            for (std::size_t i = 0; i < count; ++i) {
                cmp_put_le32(table.data() + 8 + i * 8, s.seek[i].first);
                cmp_put_le32(table.data() + 12 + i * 8, s.seek[i].second);
            }
            std::byte *footer = table.data() + 8 + count * 8;
            cmp_put_le32(footer, static_cast<std::uint32_t>(count));
            footer[4] = std::byte{0};  // no per-frame checksums in the table: every frame carries its own
            cmp_put_le32(footer + 5, cmp_seekable_magic);
            HSDK_TRYV(s.emit(table));
        }
    }
    s.finished = true;
    return success();
}

bool CompressWriter::finished() const noexcept { return state_ && state_->finished; }
std::uint64_t CompressWriter::bytes_in() const noexcept { return state_ ? state_->in : 0; }
std::uint64_t CompressWriter::bytes_out() const noexcept { return state_ ? state_->out : 0; }

// ---- whole files ---------------------------------------------------------------------------------

Result<void> compress_file(Compression compression, int level, const std::string &in_path, const std::string &out_path, bool overwrite) {
    // The writer first: a bad level fails before anything is opened or created.
    File *out = nullptr;
    std::uint64_t written = 0;
    HSDK_TRY(auto writer, CompressWriter::create(compression, level, [&out, &written](std::span<const std::byte> bytes) -> Result<void> {
        HSDK_TRYV(out->write_all(written, bytes));
        written += bytes.size();
        return success();
    }));
    HSDK_TRY(auto in, File::open_read(in_path));
    HSDK_TRY(const std::uint64_t size, in.size());
    AtomicOutputSet outputs;
    HSDK_TRY(out, outputs.add(out_path, overwrite));
    std::vector<std::byte> buf(compression_default_unit);
    for (std::uint64_t at = 0; at < size;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - at));
        HSDK_TRYV(in.read_exact(at, std::span<std::byte>(buf.data(), n)));
        HSDK_TRYV(writer.write(std::span<const std::byte>(buf.data(), n)));
        at += n;
    }
    HSDK_TRYV(writer.finish());
    HSDK_TRYV(out->truncate(written));
    return outputs.commit();
}

Result<void> decompress_file(const std::string &in_path, const std::string &out_path, bool overwrite) {
    HSDK_TRY(auto compressed, open_file_source(in_path));
    std::array<std::byte, 4> magic{};
    const std::size_t got = static_cast<std::size_t>(std::min<std::uint64_t>(compressed->size(), magic.size()));
    HSDK_TRYV(compressed->read_exact(0, std::span<std::byte>(magic.data(), got)));
    if (detect_compression(std::span<const std::byte>(magic.data(), got)) == Compression::none)
        return fail(Errc::invalid_argument, fmt::format("'{}' is not compressed (no gzip, zstd or lz4 magic)", in_path));
    auto opened = open_decompressed_source(std::move(compressed));
    if (!opened) return fail(opened.error().with_context(fmt::format("decompressing '{}'", in_path)));
    const auto &plain = opened.value();
    AtomicOutputSet outputs;
    HSDK_TRY(File * out, outputs.add(out_path, overwrite));
    std::vector<std::byte> buf(16 * cmp_mib);
    const std::uint64_t size = plain->size();
    for (std::uint64_t at = 0; at < size;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - at));
        if (auto r = plain->read_exact(at, std::span<std::byte>(buf.data(), n)); !r)
            return fail(r.error().with_context(fmt::format("decompressing '{}'", in_path)));
        // Runs of data between 64 KiB blocks of zeros, each written at once; the zeros stay holes.
        for (std::size_t p = 0; p < n;) {
            const std::size_t len = std::min(cmp_hole_block, n - p);
            if (is_all_zero(std::span<const std::byte>(buf.data() + p, len))) {
                p += len;
                continue;
            }
            std::size_t q = p + len;
            while (q < n) {
                const std::size_t l = std::min(cmp_hole_block, n - q);
                if (is_all_zero(std::span<const std::byte>(buf.data() + q, l))) break;
                q += l;
            }
            HSDK_TRYV(out->write_all(at + p, std::span<const std::byte>(buf.data() + p, q - p)));
            p = q;
        }
        at += n;
    }
    HSDK_TRYV(out->truncate(size));
    return outputs.commit();
}

}  // namespace hypersdk::io
