// Whole-buffer compression codecs for grains and clusters (libdeflate, zstd), with a zlib fallback
// for streams libdeflate refuses. Safe to call from many threads (per-thread codec state).
#pragma once

#include <hypersdk/error.hpp>

#include <cstddef>
#include <span>

namespace hypersdk::core::codec {

enum class Kind {
    deflate_raw,  // RFC 1951 (qcow2 zlib compression type)
    zlib,         // RFC 1950, deflate with a zlib header and Adler-32 (VMDK grains)
    zstd,         // a zstd frame (qcow2 zstd compression type)
};

// Decompresses `in` into exactly `out.size()` bytes. Trailing bytes after the end of the stream are
// ignored (qcow2 and VMDK pad compressed data to sectors). Fails with corrupt_image when the stream is
// damaged or yields fewer bytes than expected; `what` names the object for the message.
Result<void> decompress_exact(Kind kind, std::span<const std::byte> in, std::span<std::byte> out, std::string_view what);

// Like decompress_exact but accepts a stream that ends early; returns the number of bytes produced.
Result<std::size_t> decompress_upto(Kind kind, std::span<const std::byte> in, std::span<std::byte> out, std::string_view what);

// Upper bound of the compressed size of `n` input bytes.
std::size_t compress_bound(Kind kind, std::size_t n) noexcept;

// Compresses `in` into `out` (sized with compress_bound) and returns the compressed size.
// level: 1..12 for deflate/zlib (libdeflate levels; 6 matches zlib's default), 1..19 for zstd.
Result<std::size_t> compress(Kind kind, int level, std::span<const std::byte> in, std::span<std::byte> out);

}  // namespace hypersdk::core::codec
