#include "core/codec.hpp"

#include <fmt/format.h>
#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cmath>
#include <memory>

namespace hypersdk::core::codec {
namespace {

struct Decompressor {
    libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    ~Decompressor() { libdeflate_free_decompressor(d); }
};

libdeflate_decompressor *thread_decompressor() {
    thread_local Decompressor dec;
    if (dec.d == nullptr) throw std::bad_alloc();
    return dec.d;
}

libdeflate_compressor *thread_compressor(int level) {
    struct Compressors {
        std::array<libdeflate_compressor *, 13> by_level{};
        ~Compressors() {
            for (auto *c : by_level) libdeflate_free_compressor(c);
        }
    };
    thread_local Compressors cs;
    if (level < 0) level = 0;  // 0: stored blocks only
    if (level > 12) level = 12;
    auto &slot = cs.by_level[static_cast<std::size_t>(level)];
    if (slot == nullptr) slot = libdeflate_alloc_compressor(level);
    if (slot == nullptr) throw std::bad_alloc();
    return slot;
}

// zlib's streaming inflate, used when libdeflate declines a stream that fills the output before its
// end marker (qemu accepts those; so do we).
Result<std::size_t> zlib_inflate(Kind kind, std::span<const std::byte> in, std::span<std::byte> out, std::string_view what) {
    z_stream s{};
    const int window = kind == Kind::zlib ? 15 : -15;
    if (inflateInit2(&s, window) != Z_OK) return fail(Errc::no_memory, "cannot initialise zlib");
    s.next_in = reinterpret_cast<Bytef *>(const_cast<std::byte *>(in.data()));
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = reinterpret_cast<Bytef *>(out.data());
    s.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&s, Z_FINISH);
    const std::size_t produced = out.size() - s.avail_out;
    inflateEnd(&s);
    if (rc == Z_STREAM_END || (rc == Z_BUF_ERROR && s.avail_out == 0)) return produced;
    return fail_corrupt(fmt::format("{}: compressed data is damaged (zlib error {})", what, rc));
}

// Order-0 entropy of the bytes, in bits per byte. Random (already compressed, encrypted) data is
// near 8; deflate cannot shrink such data, so searching it for matches is wasted time.
double byte_entropy(std::span<const std::byte> in) {
    if (in.empty()) return 0;
    std::array<std::uint32_t, 256> counts{};
    for (std::byte b : in) ++counts[static_cast<unsigned char>(b)];
    double h = 0;
    const double n = static_cast<double>(in.size());
    for (auto c : counts) {
        if (c == 0) continue;
        const double p = c / n;
        h -= p * std::log2(p);
    }
    return h;
}

}  // namespace

Result<std::size_t> decompress_upto(Kind kind, std::span<const std::byte> in, std::span<std::byte> out, std::string_view what) {
    if (kind == Kind::zstd) {
        const std::size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
        if (ZSTD_isError(n)) {
            // Trailing padding after the frame makes ZSTD_decompress fail; decode exactly one frame.
            const std::size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
            if (!ZSTD_isError(frame) && frame < in.size()) return decompress_upto(kind, in.first(frame), out, what);
            return fail_corrupt(fmt::format("{}: compressed data is damaged ({})", what, ZSTD_getErrorName(n)));
        }
        return n;
    }
    std::size_t in_used = 0, out_made = 0;
    auto *d = thread_decompressor();
    const libdeflate_result r =
        kind == Kind::zlib ? libdeflate_zlib_decompress_ex(d, in.data(), in.size(), out.data(), out.size(), &in_used, &out_made)
                           : libdeflate_deflate_decompress_ex(d, in.data(), in.size(), out.data(), out.size(), &in_used, &out_made);
    switch (r) {
    case LIBDEFLATE_SUCCESS: return out_made;
    case LIBDEFLATE_INSUFFICIENT_SPACE: return zlib_inflate(kind, in, out, what);
    default: return fail_corrupt(fmt::format("{}: compressed data is damaged", what));
    }
}

Result<void> decompress_exact(Kind kind, std::span<const std::byte> in, std::span<std::byte> out, std::string_view what) {
    HSDK_TRY(auto n, decompress_upto(kind, in, out, what));
    if (n != out.size())
        return fail_corrupt(fmt::format("{}: compressed data expands to {} bytes, expected {}", what, n, out.size()));
    return success();
}

std::size_t compress_bound(Kind kind, std::size_t n) noexcept {
    switch (kind) {
    case Kind::zstd: return ZSTD_compressBound(n);
    case Kind::zlib: return libdeflate_zlib_compress_bound(nullptr, n);
    case Kind::deflate_raw: return libdeflate_deflate_compress_bound(nullptr, n);
    }
    return n * 2 + 1024;
}

Result<std::size_t> compress(Kind kind, int level, std::span<const std::byte> in, std::span<std::byte> out) {
    if (kind == Kind::zstd) {
        thread_local std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx *)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
        if (!cctx) return fail(Errc::no_memory, "cannot allocate a zstd context");
        const std::size_t n = ZSTD_compressCCtx(cctx.get(), out.data(), out.size(), in.data(), in.size(), level);
        if (ZSTD_isError(n)) return fail(Errc::internal, fmt::format("zstd compression failed: {}", ZSTD_getErrorName(n)));
        return n;
    }
    // Near-random input: emit stored blocks (level 0) - the same size deflate would reach, at a
    // fraction of the time. Only whole buffers of some size are judged (small ones are cheap anyway).
    if (in.size() >= 4096 && byte_entropy(in) > 7.95) level = 0;
    auto *c = thread_compressor(level);
    const std::size_t n = kind == Kind::zlib ? libdeflate_zlib_compress(c, in.data(), in.size(), out.data(), out.size())
                                             : libdeflate_deflate_compress(c, in.data(), in.size(), out.data(), out.size());
    if (n == 0) return fail(Errc::internal, "deflate output buffer too small");
    return n;
}

}  // namespace hypersdk::core::codec
