// Compressed streams (gzip, zstd, lz4) as byte sources and as outputs.
//
// Disk images travel compressed (disk.raw.gz, image.qcow2.zst, backups piped through lz4). Every
// image command should read them directly, and read them fast: a conversion reads its source from
// several threads and sometimes out of order, so a forward-only decompressor would serialise it.
// Each of the three formats can be cut into independently decodable units while staying a stream
// the stock tools decode (`gzip -d`, `pigz -d`, `zstd -d`, `lz4 -d`); CompressWriter writes such
// streams, and the reader indexes them so that a read decodes only the units it covers, with
// several units decoded at once on the shared executor.
//
// ---- what CompressWriter writes -------------------------------------------------------------
// The input is cut into units of `unit_bytes` (4 MiB by default; the last may be shorter; an empty
// input is one empty unit). Units are compressed in parallel on the executor's worker pool and
// written in order.
//
//   gzip  one gzip member (RFC 1952) per unit; `gzip -d` concatenates members. Each member's header
//         has FEXTRA set and holds exactly one subfield, 'H' 'S' (12 bytes of extra field):
//             1f 8b 08 04 | MTIME = 0 (4) | XFL | OS = 255 | XLEN = 12 (2, LE)
//             'H' 'S' | LEN = 8 (2, LE) | CSIZE (4, LE) | USIZE (4, LE)
//             raw deflate | CRC-32 (4, LE) | ISIZE (4, LE)
//         CSIZE is the whole member's length (from its first byte to the end of ISIZE), USIZE its
//         decompressed length (= ISIZE). A reader hops from member to member with one small read
//         each. Readers accept LEN > 8 (later fields are ignored). BGZF's 'B' 'C' subfield (BSIZE =
//         member length - 1) is accepted too; its size then comes from the ISIZE trailer.
//         Levels 1..9 (0: 6), compressed with libdeflate at the same level number.
//   zstd  one frame per unit with Frame_Content_Size and the XXH64 content checksum, then the seek
//         table of zstd's seekable format (contrib/seekable_format: a skippable frame, magic
//         0x184D2A5E, holding Compressed_Size/Decompressed_Size per frame and the footer
//         "count, descriptor, 0x8F92EAB1"), which `zstd -d` skips. A reader builds its index from
//         the table with one read at the end of the stream. Levels 1..19 (0: 3).
//   lz4   one lz4 frame per unit (`lz4 -d` decodes concatenated frames) with Content_Size, the
//         content checksum and independent blocks, the block size the smallest of 64 KiB / 256 KiB
//         / 1 MiB / 4 MiB that holds a unit; then the same seek table as zstd's (a skippable frame,
//         which `lz4 -d` skips too). Levels 0..12 (0: the fast default, 3+: HC).
//
// ---- how the reader reads -------------------------------------------------------------------
// At open it walks the units' headers without decompressing anything:
//   gzip  members carrying 'HS' or 'BC' (the size in the header; ISIZE for 'BC');
//   zstd  the seek table when the stream ends with a valid one whose sizes add up exactly; else
//         every frame's header and block headers (Frame_Content_Size, skippable frames skipped);
//   lz4   the seek table as for zstd; else every frame's descriptor (Content_Size) and block
//         headers up to the end mark.
// When every data frame/member has a known decompressed size of at most `max_unit_bytes`, the
// stream is *indexed*: consecutive small frames are grouped into units of up to `group_bytes`, and
// read_some decodes only the unit(s) a read covers, each whole and verified (CRC-32 + ISIZE for
// gzip, the frame checksums for zstd and lz4, and its exact length) before any of its bytes is
// copied out. Decoded units live in an LRU cache (`cache_bytes`); a reader moving forward gets the
// next `threads` units decoded ahead of it, in parallel, on the executor's worker pool, so a
// sequential consumer gets parallel decompression. The first unit is decoded at open.
//
// Anything else (what the stock CLIs write by default: one frame or member for the whole stream,
// zstd frames without content size, lz4 frames without Content_Size) is *streamed*: one forward
// pass of a sequential decoder (ISA-L inflate, ZSTD_decompressStream, LZ4F_decompress) behind
// open_tar_stream_source's bounded window; a read behind the window starts the stream again. The
// size comes from the headers when they give it (every zstd frame's content size, every lz4
// frame's Content_Size), else from one counting pass of decompression at open (logged). Streaming
// decodes sequentially, lz4 with independent blocks included. A streamed source hands bytes out as
// they are decoded: a checksum that fails at the end of a frame fails the read that reaches it,
// and the stream's last byte is held back until the whole stream has been verified.
//
// Corruption (truncation, a bad checksum, a damaged block, bytes after the last unit) is
// corrupt_image naming the source and the compressed offset. A stream cut exactly between two
// units (a CompressWriter that never finished, writing somewhere not atomic) is a valid, shorter
// stream to every reader, ours and the stock tools' alike: nothing in it says more was to come.
// Hostile headers cannot make a reader allocate without bound: indexed units are at most
// `max_unit_bytes`, a frame's claimed content size must fit in the blocks that follow it, and the
// streaming decoder keeps zstd's default window limit (128 MiB: a frame declaring more, as
// `zstd --long=28` or more writes through a pipe, is refused as unsupported).
#pragma once

#include <hypersdk/byte_source.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::io {

enum class Compression { none, gzip, zstd, lz4 };

// The default unit of CompressWriter: large enough that restarting the compressor per unit (its
// history, the headers) costs little ratio, small enough that a random read decodes little.
inline constexpr std::size_t compression_default_unit = std::size_t{4} << 20;
// The largest unit CompressWriter writes and the default largest unit the reader indexes: what a
// read may have to decode whole (and hold in memory) to hand out one byte.
inline constexpr std::size_t compression_max_unit = std::size_t{64} << 20;

// The format `first_bytes` starts with, by magic number: 1f 8b (gzip), 28 b5 2f fd (zstd),
// 04 22 4d 18 (lz4 frame); none for anything else, including too few bytes. Callers pass the first
// 4 bytes of a file (fewer are fine for gzip). Cheap and keyless, so sources can be recognised
// before anyone knows how they were made.
[[nodiscard]] Compression detect_compression(std::span<const std::byte> first_bytes) noexcept;

// "none", "gzip", "zstd" or "lz4" (what a user types after --compress); anything else is
// invalid_argument listing them.
Result<Compression> parse_compression(std::string_view name);
// The inverse of parse_compression ("none" for none), for messages and option round trips.
[[nodiscard]] std::string_view compression_name(Compression compression) noexcept;
// The conventional file suffix: ".gz", ".zst", ".lz4" ("" for none), to name outputs.
[[nodiscard]] std::string_view compression_suffix(Compression compression) noexcept;

// ---- reading ---------------------------------------------------------------------------------

struct DecompressOptions {
    // The name in messages; empty: the compressed source's name.
    std::string name;
    // Units decoded at once ahead of a forward reader (the read-ahead depth): 0 = the executor's
    // worker pool size; 1 = no read-ahead (each read decodes in the calling thread).
    unsigned threads = 0;
    // Decoded units kept for later reads (at least read-ahead + 2 units are kept regardless), so
    // the small, overlapping reads of format drivers do not decode a unit twice.
    std::size_t cache_bytes = std::size_t{64} << 20;
    // Frames or members decompressing to more than this are not indexed (the stream is read
    // forward instead): the bound on what one read may have to decode and hold.
    std::size_t max_unit_bytes = compression_max_unit;
    // Consecutive frames are decoded together as one unit of up to this many bytes (BGZF's 64 KiB
    // members become 1 MiB units): fewer, larger reads of the compressed source (requests, for a
    // remote one) and less bookkeeping per byte, for more decoding per small random read. 0: one
    // unit per frame (a stream written with small units on purpose keeps them).
    std::size_t group_bytes = std::size_t{1} << 20;
    // Streamed sources: decoded bytes kept ahead of and behind the newest read (see
    // TarStreamOptions::window_bytes); a read further back reads the stream again.
    std::size_t window_bytes = std::size_t{64} << 20;
    // false: always stream, even an indexable stream (a consumer that reads once front to back and
    // wants no index; tests and benchmarks of the streaming path).
    bool allow_index = true;
    // What the decompressed bytes are when the caller knows (a NAME.raw.zst is raw): the source's
    // native_format(), so that raw, which is never guessed, need not be named again.
    std::string native_format;
    CancelToken cancel;
};

// The decompressed bytes of `compressed` as a ByteSource: thread-safe read_some at any offset.
// The format comes from the magic (invalid_argument when there is none). Walks the headers and,
// when indexed, decodes the first unit now; a stream without sizes is decompressed once to count
// (see above). name() is the compressed source's name, identity() its identity + "#decompressed";
// native_format() is options.native_format (empty: the drivers recognise what was compressed); references resolve like
// the compressed source's (a compressed image's backing file lies beside it). allocation() reports
// the 4 KiB zero blocks of units already decoded (in the cache) as non-data, all else as data.
Result<std::shared_ptr<ByteSource>> open_decompressed_source(std::shared_ptr<const ByteSource> compressed,
                                                             const DecompressOptions &options = {});

// `source` as it is, or its decompressed bytes when its first bytes are a gzip, zstd or lz4
// magic: the one call that lets every image command take compressed images.
Result<std::shared_ptr<ByteSource>> decompress_if_compressed(std::shared_ptr<ByteSource> source,
                                                             const DecompressOptions &options = {});

// How a source from open_decompressed_source reads: for tests, logs and `info`. Which path a
// stream takes decides its random-read cost, so it is worth being able to ask.
struct DecompressedInfo {
    Compression compression = Compression::none;
    bool indexed = false;            // random access through the unit index; false: a forward stream
    std::uint64_t units = 0;         // units of the index (0 when streamed)
    std::uint64_t compressed_size = 0;
};
// The info of a source open_decompressed_source returned; nullopt for any other source.
[[nodiscard]] std::optional<DecompressedInfo> decompressed_info(const ByteSource &source);

// ---- writing ---------------------------------------------------------------------------------

// Receives the compressed bytes in order (the same shape as EnvelopeSink, so outputs compose).
using CompressSink = std::function<Result<void>(std::span<const std::byte>)>;

// Streams data into an indexable compressed stream (the layouts above). One producer: not
// thread-safe. Up to 2 x threads units are compressed at once on the executor's worker pool (the
// calling thread compresses a unit itself rather than wait for a busy pool), and the sink gets
// them in order. finish() writes the last unit (and the seek table); a stream whose writer
// never finished lacks them. After a failure (a sink error included) every further call fails.
class CompressWriter {
public:
    // `level` 0 is the format's default (gzip 6, zstd 3, lz4 fast); out of range: invalid_argument.
    // `threads` 0 = the worker pool's size, 1 = compress in the calling thread. `unit_bytes`
    // from 64 KiB to compression_max_unit. Compression::none copies the input through.
    static Result<CompressWriter> create(Compression compression, int level, CompressSink sink, unsigned threads = 0,
                                         std::size_t unit_bytes = compression_default_unit);

    CompressWriter(CompressWriter &&) noexcept;
    CompressWriter &operator=(CompressWriter &&) noexcept;
    // Abandons units not yet compressed (their tasks find nothing to do).
    ~CompressWriter();

    Result<void> write(std::span<const std::byte> data);
    Result<void> finish();

    [[nodiscard]] bool finished() const noexcept;
    [[nodiscard]] std::uint64_t bytes_in() const noexcept;   // accepted by write() so far
    [[nodiscard]] std::uint64_t bytes_out() const noexcept;  // handed to the sink so far

private:
    struct State;
    explicit CompressWriter(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

// ---- whole files -----------------------------------------------------------------------------

// Both write `out_path` under a temporary name beside it (io/atomic_output.hpp) and rename it only
// on success: on failure nothing is left, and with overwrite false an existing `out_path` fails
// with conflict. compress_file writes CompressWriter's layout with the default unit and threads.
Result<void> compress_file(Compression compression, int level, const std::string &in_path, const std::string &out_path,
                           bool overwrite = true);
// The format from the magic (invalid_argument when the input is not compressed). A damaged input
// fails before the output appears (the temporary is removed); zero runs of 64 KiB are left as
// holes (the output reads the same, and a disk image stays sparse).
Result<void> decompress_file(const std::string &in_path, const std::string &out_path, bool overwrite = true);

}  // namespace hypersdk::io
