// Compressed streams as byte sources and outputs (io/compression.hpp): our writer's streams read back
// through the index at many offsets, the stock tools' streams read through the index or the forward
// stream (the path asserted each time), our streams decoded by the stock tools, and damaged or
// hostile streams failing with corrupt_image. Data is seeded; nothing looks at the clock. The stock
// tools (gzip, pigz, zstd, lz4) are run through the shell; a case whose tool is missing says so and
// checks nothing else.
#include <doctest/doctest.h>

#include "io/compression.hpp"
#include "scratch.hpp"

#include <hypersdk/byte_source.hpp>
#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// Everything, the test cases included, lives in one named namespace: test files are compiled in
// unity batches, and the using-directives below must not leak into the next file of a batch.
namespace compression_test {

using namespace hypersdk;
using namespace hypersdk::io;
using Bytes = std::vector<std::byte>;

constexpr std::size_t KiB = 1u << 10;
constexpr std::size_t MiB = 1u << 20;
constexpr std::size_t small_unit = 64 * KiB;  // many units from little data

template <class T>
std::string why(const Result<T> &r) {
    return r ? std::string() : fmt::format("{}: {}", errc_name(r.error().code), r.error().message);
}

// A disk-like mix of 16 KiB regions: zero runs, text and incompressible bytes.
Bytes cmp_data(std::size_t size, unsigned seed) {
    Bytes out(size);
    const std::string_view text = "libhypersdk compression test: the quick brown fox jumps over the lazy dog. ";
    const std::size_t region = 16 * KiB;
    for (std::size_t at = 0, i = 0; at < size; at += region, ++i) {
        const std::size_t n = std::min(region, size - at);
        switch ((i * 7 + seed) % 4) {
        case 0: break;  // zeros
        case 1:
            for (std::size_t k = 0; k < n; ++k) out[at + k] = static_cast<std::byte>(text[(k + i) % text.size()]);
            break;
        default: {
            const auto r = test::pattern(n, seed * 1000 + static_cast<unsigned>(i));
            std::copy(r.begin(), r.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
        }
        }
    }
    return out;
}

Bytes read_all_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> v((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Bytes out(v.size());
    if (!v.empty()) std::memcpy(out.data(), v.data(), v.size());
    return out;
}

// Compresses `data` with our writer, handed over in pieces of `piece` bytes.
Bytes compress(Compression c, const Bytes &data, int level = 0, std::size_t unit = small_unit, unsigned threads = 0,
               std::size_t piece = 300 * KiB) {
    Bytes out;
    auto w = CompressWriter::create(
        c, level,
        [&out](std::span<const std::byte> b) -> Result<void> {
            out.insert(out.end(), b.begin(), b.end());
            return success();
        },
        threads, unit);
    REQUIRE_MESSAGE(w, why(w));
    for (std::size_t at = 0; at < data.size(); at += piece) {
        auto r = w.value().write(std::span<const std::byte>(data).subspan(at, std::min(piece, data.size() - at)));
        REQUIRE_MESSAGE(r, why(r));
    }
    auto f = w.value().finish();
    REQUIRE_MESSAGE(f, why(f));
    CHECK(w.value().bytes_in() == data.size());
    CHECK(w.value().bytes_out() == out.size());
    return out;
}

// The stored bytes as they are (open_byte_source would decompress them itself).
std::shared_ptr<ByteSource> open_file(const std::string &path) {
    HttpSourceOptions as_stored;
    as_stored.decompress = false;
    auto s = open_byte_source(path, as_stored);
    REQUIRE_MESSAGE(s, why(s));
    return s.value();
}

std::shared_ptr<ByteSource> open_plain(const std::string &path, const DecompressOptions &o = {}) {
    auto s = open_decompressed_source(open_file(path), o);
    REQUIRE_MESSAGE(s, why(s));
    return s.value();
}

Bytes read_whole(const ByteSource &s, std::size_t piece = 1 * MiB) {
    Bytes out(s.size());
    for (std::uint64_t at = 0; at < out.size();) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(piece, out.size() - at));
        auto r = s.read_some(at, std::span<std::byte>(out.data() + at, n));
        REQUIRE_MESSAGE(r, why(r));
        REQUIRE(r.value() == n);
        at += n;
    }
    return out;
}

// Reads at `count` seeded offsets (lengths up to three units), comparing with `expect`.
void check_random_reads(const ByteSource &s, const Bytes &expect, std::size_t unit, unsigned count, unsigned seed) {
    REQUIRE(s.size() == expect.size());
    std::mt19937_64 rng(seed);
    Bytes buf;
    for (unsigned i = 0; i < count && !expect.empty(); ++i) {
        std::uint64_t offset = rng() % expect.size();
        if (i % 3 == 0) offset = (offset / unit) * unit + (i % 2 == 0 ? 0 : unit - 1);  // at and just before unit boundaries
        offset = std::min<std::uint64_t>(offset, expect.size() - 1);
        const std::size_t len = 1 + static_cast<std::size_t>(rng() % (3 * unit));
        buf.assign(len, std::byte{0xAA});
        auto r = s.read_some(offset, buf);
        REQUIRE_MESSAGE(r, why(r));
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(len, expect.size() - offset));
        REQUIRE(r.value() == want);
        REQUIRE(std::memcmp(buf.data(), expect.data() + offset, want) == 0);
    }
    // Past the end: nothing.
    Bytes one(1);
    auto r = s.read_some(expect.size(), one);
    REQUIRE(r);
    CHECK(r.value() == 0);
}

bool have(const char *tool) { return std::system(fmt::format("command -v {} >/dev/null 2>&1", tool).c_str()) == 0; }

int sh(const std::string &cmd) { return std::system(cmd.c_str()); }

// Collects log messages while alive (the sink is process-wide; doctest runs cases one at a time).
struct LogCapture {
    std::mutex m;
    std::vector<std::string> lines;
    LogCapture() {
        set_log_sink(
            [this](LogLevel, std::string_view msg) {
                std::lock_guard lock(m);
                lines.emplace_back(msg);
            },
            LogLevel::debug);
    }
    ~LogCapture() { set_log_sink({}); }
    bool contains(std::string_view needle) {
        std::lock_guard lock(m);
        return std::any_of(lines.begin(), lines.end(), [&](const std::string &l) { return l.find(needle) != std::string::npos; });
    }
};

constexpr Compression all_codecs[] = {Compression::gzip, Compression::zstd, Compression::lz4};

// One member of BGZF (samtools' blocked gzip): deflate with the 'BC' subfield holding its size - 1.
Bytes bgzf_member(std::span<const std::byte> in) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    Bytes deflated(deflateBound(&z, static_cast<uLong>(in.size())) + 16);
    z.next_in = reinterpret_cast<Bytef *>(const_cast<std::byte *>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef *>(deflated.data());
    z.avail_out = static_cast<uInt>(deflated.size());
    REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
    deflated.resize(z.total_out);
    deflateEnd(&z);
    const std::size_t total = 18 + deflated.size() + 8;
    REQUIRE(total <= 65536);
    const std::uint32_t crc = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef *>(in.data()), static_cast<uInt>(in.size())));
    Bytes m = {std::byte{0x1f}, std::byte{0x8b}, std::byte{8}, std::byte{4}, {}, {}, {}, {}, {}, std::byte{0xff}, std::byte{6}, {},
               std::byte{'B'},  std::byte{'C'},  std::byte{2}, {},           static_cast<std::byte>((total - 1) & 0xff),
               static_cast<std::byte>((total - 1) >> 8)};
    m.reserve(total);  // also keeps GCC 12's -Warray-bounds from a false positive on the insert below
    m.insert(m.end(), deflated.begin(), deflated.end());
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<std::byte>(crc >> (8 * i)));
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<std::byte>(in.size() >> (8 * i)));
    return m;
}

TEST_CASE("compression: names, suffixes and magic") {
    CHECK(detect_compression(Bytes{std::byte{0x1f}, std::byte{0x8b}}) == Compression::gzip);
    CHECK(detect_compression(Bytes{std::byte{0x28}, std::byte{0xb5}, std::byte{0x2f}, std::byte{0xfd}}) == Compression::zstd);
    CHECK(detect_compression(Bytes{std::byte{0x04}, std::byte{0x22}, std::byte{0x4d}, std::byte{0x18}}) == Compression::lz4);
    CHECK(detect_compression(Bytes{std::byte{0x28}, std::byte{0xb5}}) == Compression::none);  // too short for zstd
    CHECK(detect_compression(Bytes{}) == Compression::none);
    CHECK(detect_compression(Bytes{std::byte{'Q'}, std::byte{'F'}, std::byte{'I'}, std::byte{0xfb}}) == Compression::none);
    for (Compression c : {Compression::none, Compression::gzip, Compression::zstd, Compression::lz4}) {
        auto p = parse_compression(compression_name(c));
        REQUIRE(p);
        CHECK(p.value() == c);
    }
    auto bad = parse_compression("xz");
    REQUIRE(!bad);
    CHECK(bad.error().code == Errc::invalid_argument);
    CHECK(bad.error().message.find("gzip, zstd, lz4") != std::string::npos);
    CHECK(compression_suffix(Compression::gzip) == ".gz");
    CHECK(compression_suffix(Compression::zstd) == ".zst");
    CHECK(compression_suffix(Compression::lz4) == ".lz4");
    CHECK(compression_suffix(Compression::none).empty());
}

TEST_CASE("compression: the writer refuses bad levels and unit sizes") {
    auto sink = [](std::span<const std::byte>) -> Result<void> { return success(); };
    CHECK(CompressWriter::create(Compression::gzip, 10, sink).error().code == Errc::invalid_argument);
    CHECK(CompressWriter::create(Compression::zstd, 20, sink).error().code == Errc::invalid_argument);
    CHECK(CompressWriter::create(Compression::zstd, -1, sink).error().code == Errc::invalid_argument);
    CHECK(CompressWriter::create(Compression::lz4, 13, sink).error().code == Errc::invalid_argument);
    CHECK(CompressWriter::create(Compression::zstd, 0, sink, 0, 1000).error().code == Errc::invalid_argument);
    CHECK(CompressWriter::create(Compression::zstd, 0, sink, 0, compression_max_unit + 1).error().code == Errc::invalid_argument);
    CHECK(CompressWriter::create(Compression::zstd, 0, nullptr).error().code == Errc::invalid_argument);
    CHECK(CompressWriter::create(Compression::gzip, 9, sink));
    CHECK(CompressWriter::create(Compression::lz4, 0, sink));
}

TEST_CASE("compression: round trips through the index at every size around a unit") {
    const std::size_t unit = small_unit;
    const Bytes source = cmp_data(5 * unit + 1234, 3);
    for (Compression c : all_codecs) {
        for (std::size_t size : {std::size_t{0}, std::size_t{1}, unit - 1, unit, unit + 1, 5 * unit + 1234}) {
            CAPTURE(compression_name(c));
            CAPTURE(size);
            const Bytes data(source.begin(), source.begin() + static_cast<std::ptrdiff_t>(size));
            const auto path = test::write_file(fmt::format("cmp-rt-{}-{}{}", compression_name(c), size, compression_suffix(c)), compress(c, data, 0, unit));
            DecompressOptions o;
            o.group_bytes = 0;  // one unit per frame
            auto s = open_plain(path, o);
            const auto info = decompressed_info(*s);
            REQUIRE(info);
            CHECK(info->compression == c);
            CHECK(info->indexed);
            CHECK(info->units == std::max<std::uint64_t>(1, (size + unit - 1) / unit));
            CHECK(s->size() == size);
            CHECK(s->name() == path);
            CHECK(s->native_format().empty());
            CHECK(s->identity() == open_file(path)->identity() + "#decompressed");
            CHECK(read_whole(*s, 10000) == data);
            check_random_reads(*s, data, unit, 120, static_cast<unsigned>(size));
        }
    }
}

TEST_CASE("compression: levels, default units and identical output for any thread count or piece size") {
    const Bytes data = cmp_data(9 * MiB + 4321, 5);  // three default units
    struct Case {
        Compression c;
        int level;
    };
    for (Case k : {Case{Compression::gzip, 1}, Case{Compression::gzip, 9}, Case{Compression::zstd, 1}, Case{Compression::zstd, 19},
                   Case{Compression::lz4, 0}, Case{Compression::lz4, 9}}) {
        CAPTURE(compression_name(k.c));
        CAPTURE(k.level);
        // zstd 19 is slow: a smaller input keeps the case fast.
        const Bytes in = k.level == 19 ? Bytes(data.begin(), data.begin() + 4 * MiB + 1) : data;
        const Bytes parallel = compress(k.c, in, k.level, compression_default_unit, 4, 1 * MiB + 17);
        const Bytes serial = compress(k.c, in, k.level, compression_default_unit, 1, 65537);
        CHECK(parallel == serial);
        const auto path = test::write_file(fmt::format("cmp-level-{}-{}{}", compression_name(k.c), k.level, compression_suffix(k.c)), parallel);
        auto s = open_plain(path);
        CHECK(decompressed_info(*s)->indexed);
        CHECK(decompressed_info(*s)->units == (in.size() + compression_default_unit - 1) / compression_default_unit);
        check_random_reads(*s, in, compression_default_unit, 40, 11);
        CHECK(read_whole(*s) == in);
    }
    // Levels change the output.
    CHECK(compress(Compression::zstd, data, 1) != compress(Compression::zstd, data, 9));
    CHECK(compress(Compression::gzip, data, 1) != compress(Compression::gzip, data, 9));
}

TEST_CASE("compression: small frames are grouped into units") {
    const Bytes data = cmp_data(40 * small_unit + 5, 7);
    const auto path = test::write_file("cmp-group.zst", compress(Compression::zstd, data));
    auto grouped = open_plain(path);
    CHECK(decompressed_info(*grouped)->units == 3);  // 41 frames in units of 1 MiB
    check_random_reads(*grouped, data, small_unit, 60, 1);
    DecompressOptions o;
    o.group_bytes = 0;
    CHECK(decompressed_info(*open_plain(path, o))->units == 41);
}

TEST_CASE("compression: Compression::none copies through") {
    const Bytes data = cmp_data(100 * KiB, 2);
    CHECK(compress(Compression::none, data) == data);
}

TEST_CASE("compression: concurrent readers get the right bytes") {
    const std::size_t unit = small_unit;
    const Bytes data = cmp_data(40 * unit + 77, 9);
    for (Compression c : all_codecs) {
        CAPTURE(compression_name(c));
        const auto path = test::write_file(fmt::format("cmp-conc{}", compression_suffix(c)), compress(c, data, 0, unit));
        DecompressOptions o;
        o.threads = 4;
        o.cache_bytes = 4 * unit;  // evictions while reading
        auto s = open_plain(path, o);
        std::atomic<int> bad{0};
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                std::mt19937_64 rng(t + 1);
                Bytes buf;
                for (int i = 0; i < 150; ++i) {
                    // Half of the threads read forward (read-ahead), half at random.
                    const std::uint64_t offset = t % 2 == 0 ? (static_cast<std::uint64_t>(i) * 17 * KiB) % data.size() : rng() % data.size();
                    const std::size_t len = 1 + static_cast<std::size_t>(rng() % (2 * unit));
                    buf.assign(len, std::byte{0});
                    auto r = s->read_some(offset, buf);
                    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(len, data.size() - offset));
                    if (!r || r.value() != want || std::memcmp(buf.data(), data.data() + offset, want) != 0) ++bad;
                }
            });
        for (auto &th : threads) th.join();
        CHECK(bad == 0);
    }
}

TEST_CASE("compression: our streams also read forward (streaming path, sizes from the headers)") {
    const Bytes data = cmp_data(7 * small_unit + 5, 4);
    for (Compression c : all_codecs) {
        CAPTURE(compression_name(c));
        const auto path = test::write_file(fmt::format("cmp-fwd{}", compression_suffix(c)), compress(c, data));
        LogCapture log;
        DecompressOptions o;
        o.allow_index = false;
        auto s = open_plain(path, o);
        CHECK_FALSE(decompressed_info(*s)->indexed);
        CHECK(s->size() == data.size());
        CHECK_FALSE(log.contains("decompressing it once"));  // every frame gives its size
        CHECK(read_whole(*s, 100000) == data);
        // Backwards: the stream starts again.
        Bytes head(1000);
        REQUIRE(s->read_exact(0, head));
        CHECK(std::memcmp(head.data(), data.data(), head.size()) == 0);
    }
}

TEST_CASE("compression: allocation reports zero runs of decoded units") {
    Bytes data = cmp_data(4 * small_unit, 1);
    std::fill(data.begin() + 8 * KiB, data.begin() + 40 * KiB, std::byte{0});
    const auto path = test::write_file("cmp-alloc.zst", compress(Compression::zstd, data));
    DecompressOptions o;
    o.threads = 1;
    o.group_bytes = 0;
    auto s = open_plain(path, o);  // unit 0 is decoded at open
    auto a = s->allocation(0, data.size());
    REQUIRE(a);
    std::uint64_t covered = 0;
    bool saw_zero = false;
    for (const auto &run : a.value()) {
        CHECK(run.offset == covered);
        covered += run.length;
        if (!run.data) {
            saw_zero = true;
            for (std::uint64_t k = run.offset; k < run.offset + run.length; ++k) REQUIRE(data[k] == std::byte{0});
        }
    }
    CHECK(covered == data.size());
    CHECK(saw_zero);
    // Units not decoded are data.
    auto tail = s->allocation(3 * small_unit, small_unit);
    REQUIRE(tail);
    REQUIRE(tail.value().size() == 1);
    CHECK(tail.value()[0].data);
}

TEST_CASE("compression: decompress_if_compressed leaves plain sources alone") {
    const Bytes data = cmp_data(50 * KiB, 6);
    const auto plain_path = test::write_file("cmp-plain.raw", data);
    auto plain = open_file(plain_path);
    auto same = decompress_if_compressed(plain);
    REQUIRE(same);
    CHECK(same.value() == plain);
    CHECK_FALSE(decompressed_info(*plain));
    const auto gz_path = test::write_file("cmp-plain.raw.gz", compress(Compression::gzip, data));
    auto opened = decompress_if_compressed(open_file(gz_path));
    REQUIRE_MESSAGE(opened, why(opened));
    CHECK(read_whole(*opened.value()) == data);
    auto not_compressed = open_decompressed_source(plain);
    REQUIRE(!not_compressed);
    CHECK(not_compressed.error().code == Errc::invalid_argument);
}

TEST_CASE("compression: the stock tools decode our streams") {
    const Bytes data = cmp_data(3 * small_unit + 999, 8);
    struct Tool {
        Compression c;
        const char *tool;
        const char *cmd;
    };
    for (Tool t : {Tool{Compression::gzip, "gzip", "gzip -dc"}, Tool{Compression::gzip, "pigz", "pigz -dc"}, Tool{Compression::zstd, "zstd", "zstd -q -dc"},
                   Tool{Compression::lz4, "lz4", "lz4 -q -dc"}}) {
        CAPTURE(t.cmd);
        if (!have(t.tool)) {
            MESSAGE(t.tool << " is not installed: not checked");
            continue;
        }
        for (std::size_t size : {std::size_t{0}, data.size()}) {
            const Bytes in(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(size));
            const auto path = test::write_file(fmt::format("cmp-ours-{}-{}{}", t.tool, size, compression_suffix(t.c)), compress(t.c, in));
            const auto out = test::work(fmt::format("cmp-ours-{}-{}.out", t.tool, size));
            REQUIRE(sh(fmt::format("{} '{}' > '{}'", t.cmd, path, out)) == 0);
            CHECK(read_all_file(out) == in);
        }
    }
    // And zstd sees the frames and the seek table as a valid multi-frame stream.
    if (have("zstd")) {
        const auto path = test::write_file("cmp-ours-test.zst", compress(Compression::zstd, data));
        CHECK(sh(fmt::format("zstd -q -t '{}'", path)) == 0);
    }
}

TEST_CASE("compression: the stock tools' streams read back, indexed or forward") {
    const Bytes data = cmp_data(3 * MiB + 333, 12);
    const auto raw = test::write_file("cmp-stock.raw", data);
    struct Stock {
        const char *tool;
        const char *cmd;  // {0}: input, {1}: output
        const char *suffix;
        bool indexed;
        bool counted;  // no size in the headers: one counting pass at open
        std::size_t max_unit = compression_max_unit;
    };
    const Stock cases[] = {
        {"gzip", "gzip -c '{0}' > '{1}'", ".gz", false, true},
        {"pigz", "pigz -c '{0}' > '{1}'", ".gz", false, true},
        {"zstd", "zstd -q -c '{0}' > '{1}'", ".zst", true, false},  // one frame of 3 MiB with its content size
        {"zstd", "zstd -q -c '{0}' > '{1}'", ".zst", false, false, 1 * MiB},  // ...over the indexed maximum: forward, size known
        {"zstd", "cat '{0}' | zstd -q -c > '{1}'", ".zst", false, true},
        {"zstd", "zstd -q -c --no-content-size '{0}' > '{1}'", ".zst", false, true},
        {"zstd", "zstd -q -c --no-check '{0}' > '{1}'", ".zst", true, false},
        {"zstd", "(zstd -q -c '{0}'; zstd -q -c '{0}') > '{1}'", ".zst", true, false},  // two frames: two units
        {"lz4", "lz4 -q -c '{0}' > '{1}'", ".lz4", false, true},
        {"lz4", "lz4 -q -c --content-size '{0}' > '{1}'", ".lz4", true, false},
        {"lz4", "lz4 -q -c --content-size '{0}' > '{1}'", ".lz4", false, false, 1 * MiB},
        {"lz4", "lz4 -q -c -BD '{0}' > '{1}'", ".lz4", false, true},
        {"lz4", "lz4 -q -c -BD -B4 --content-size '{0}' > '{1}'", ".lz4", true, false},
        {"lz4", "lz4 -q -c -BX '{0}' > '{1}'", ".lz4", false, true},  // block checksums
    };
    int n = 0;
    for (const Stock &k : cases) {
        CAPTURE(k.cmd);
        CAPTURE(k.max_unit);
        if (!have(k.tool)) {
            MESSAGE(k.tool << " is not installed: not checked");
            continue;
        }
        const auto path = test::work(fmt::format("cmp-stock-{}{}", n++, k.suffix));
        REQUIRE(sh(fmt::format(fmt::runtime(k.cmd), raw, path)) == 0);
        const bool doubled = std::string_view(k.cmd).find("; zstd") != std::string_view::npos;
        Bytes expect = data;
        if (doubled) expect.insert(expect.end(), data.begin(), data.end());
        LogCapture log;
        DecompressOptions o;
        o.max_unit_bytes = k.max_unit;
        auto s = open_plain(path, o);
        const auto info = decompressed_info(*s);
        REQUIRE(info);
        CHECK(info->indexed == k.indexed);
        if (doubled) CHECK(info->units == 2);
        CHECK(log.contains("decompressing it once") == k.counted);
        REQUIRE(s->size() == expect.size());
        if (k.indexed) check_random_reads(*s, expect, 1 * MiB, 30, 5);
        CHECK(read_whole(*s, 777777) == expect);
    }
}

TEST_CASE("compression: BGZF members are indexed through their BC subfield") {
    const Bytes data = cmp_data(20 * 60000 + 17, 13);
    Bytes stream;
    for (std::size_t at = 0; at < data.size(); at += 60000) {
        const auto m = bgzf_member(std::span<const std::byte>(data).subspan(at, std::min<std::size_t>(60000, data.size() - at)));
        stream.insert(stream.end(), m.begin(), m.end());
    }
    const auto eof = bgzf_member({});  // BGZF's empty end-of-file member
    stream.insert(stream.end(), eof.begin(), eof.end());
    const auto path = test::write_file("cmp-bgzf.gz", stream);
    auto s = open_plain(path);
    const auto info = decompressed_info(*s);
    CHECK(info->indexed);
    CHECK(info->units < 21);  // small members are grouped
    check_random_reads(*s, data, 60000, 80, 3);
    CHECK(read_whole(*s) == data);
    if (have("gzip")) {
        const auto out = test::work("cmp-bgzf.out");
        REQUIRE(sh(fmt::format("gzip -dc '{}' > '{}'", path, out)) == 0);
        CHECK(read_all_file(out) == data);
    }
}

TEST_CASE("compression: truncated streams fail with corrupt_image") {
    const Bytes data = cmp_data(6 * small_unit, 14);
    for (Compression c : all_codecs) {
        const Bytes whole = compress(c, data);
        for (std::size_t cut : {whole.size() - 1, whole.size() / 2, std::size_t{10}}) {
            CAPTURE(compression_name(c));
            CAPTURE(cut);
            const auto path = test::write_file(fmt::format("cmp-trunc{}", compression_suffix(c)), Bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut)));
            auto s = open_decompressed_source(open_file(path));
            REQUIRE(!s);
            CHECK(s.error().code == Errc::corrupt_image);
            CHECK(s.error().message.find(path) != std::string::npos);
            CHECK_MESSAGE(s.error().message.find("truncated") != std::string::npos, s.error().message);
        }
    }
    if (have("gzip")) {  // a forward stream: the counting pass at open finds it
        const auto raw = test::write_file("cmp-trunc-stock.raw", data);
        const auto gz = test::work("cmp-trunc-stock.gz");
        REQUIRE(sh(fmt::format("gzip -c '{}' | head -c 20000 > '{}'", raw, gz)) == 0);
        auto s = open_decompressed_source(open_file(gz));
        REQUIRE(!s);
        CHECK(s.error().code == Errc::corrupt_image);
        CHECK(s.error().message.find("truncated") != std::string::npos);
    }
}

TEST_CASE("compression: a damaged unit fails its reads, hands out none of its bytes, and spares the others") {
    const std::size_t unit = small_unit;
    const Bytes data = cmp_data(6 * unit, 15);
    for (Compression c : all_codecs) {
        CAPTURE(compression_name(c));
        Bytes z = compress(c, data, 0, unit);
        // The middle of the third unit's compressed bytes (the units are of similar size).
        const std::size_t at = z.size() / 6 * 2 + z.size() / 12;
        z[at] ^= std::byte{0x5a};
        const auto path = test::write_file(fmt::format("cmp-flip{}", compression_suffix(c)), z);
        DecompressOptions o;
        o.threads = 1;
        o.group_bytes = 0;
        auto s = open_plain(path, o);  // unit 0 is fine
        std::optional<std::size_t> broken;
        for (std::size_t u = 0; u < 6; ++u) {
            Bytes buf(unit, std::byte{0xAA});
            auto r = s->read_some(u * unit, buf);
            if (r) {
                CHECK(std::memcmp(buf.data(), data.data() + u * unit, unit) == 0);
                continue;
            }
            CHECK(r.error().code == Errc::corrupt_image);
            CHECK(r.error().message.find(path) != std::string::npos);
            CHECK(r.error().message.find("compressed offset") != std::string::npos);
            CHECK(std::all_of(buf.begin(), buf.end(), [](std::byte b) { return b == std::byte{0xAA}; }));
            broken = u;
        }
        CHECK(broken.has_value());
        // decompress_file refuses it and leaves nothing behind.
        const auto out = test::work(fmt::format("cmp-flip-{}.out", compression_name(c)));
        auto d = decompress_file(path, out);
        REQUIRE(!d);
        CHECK(d.error().code == Errc::corrupt_image);
        CHECK_FALSE(test::exists(out));
        CHECK(test::leftover_temporaries(fmt::format("cmp-flip-{}.out", compression_name(c))) == 0);
    }
    if (have("zstd")) {  // a forward stream: the frame checksum fails the read that reaches it
        const auto raw = test::write_file("cmp-flip-stock.raw", data);
        const auto zst = test::work("cmp-flip-stock.zst");
        REQUIRE(sh(fmt::format("zstd -q -c '{}' > '{}'", raw, zst)) == 0);
        Bytes z = read_all_file(zst);
        z[z.size() - 2] ^= std::byte{1};  // the checksum
        test::write_file("cmp-flip-stock.zst", z);
        DecompressOptions o;
        o.max_unit_bytes = unit;  // not indexed
        auto s = open_decompressed_source(open_file(zst), o);
        REQUIRE_MESSAGE(s, why(s));
        Bytes all(data.size());
        auto r = s.value()->read_exact(0, all);
        REQUIRE(!r);
        CHECK(r.error().code == Errc::corrupt_image);
        CHECK(r.error().message.find("checksum") != std::string::npos);
    }
}

TEST_CASE("compression: bytes after the last unit are trailing garbage") {
    const Bytes data = cmp_data(3 * small_unit, 16);
    const Bytes garbage = test::pattern(100, 1);
    for (Compression c : all_codecs) {
        CAPTURE(compression_name(c));
        Bytes z = compress(c, data);
        z.insert(z.end(), garbage.begin(), garbage.end());
        const auto path = test::write_file(fmt::format("cmp-garbage{}", compression_suffix(c)), z);
        auto s = open_decompressed_source(open_file(path));
        REQUIRE(!s);
        CHECK(s.error().code == Errc::corrupt_image);
        CHECK(s.error().message.find("garbage") != std::string::npos);
    }
    if (have("gzip")) {
        const auto raw = test::write_file("cmp-garbage-stock.raw", data);
        const auto gz = test::work("cmp-garbage-stock.gz");
        REQUIRE(sh(fmt::format("(gzip -c '{}'; head -c 100 '{}') > '{}'", raw, raw, gz)) == 0);
        auto s = open_decompressed_source(open_file(gz));
        REQUIRE(!s);
        CHECK(s.error().code == Errc::corrupt_image);
    }
}

TEST_CASE("compression: hostile headers fail without allocating what they claim") {
    const auto le64 = [](Bytes &b, std::uint64_t v) {
        for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::byte>(v >> (8 * i)));
    };
    const std::uint64_t tib = std::uint64_t{1} << 40;
    SUBCASE("a zstd frame claiming 1 TiB") {
        // Single segment, 8-byte content size, one raw block of 4 bytes (last).
        Bytes z = {std::byte{0x28}, std::byte{0xb5}, std::byte{0x2f}, std::byte{0xfd}, std::byte{0xE0}};
        le64(z, tib);
        for (int b : {0x21, 0, 0, 0x61, 0x62, 0x63, 0x64}) z.push_back(static_cast<std::byte>(b));
        auto s = open_decompressed_source(open_file(test::write_file("cmp-hostile-1.zst", z)));
        REQUIRE(!s);
        CHECK(s.error().code == Errc::corrupt_image);
        CHECK(s.error().message.find("claims") != std::string::npos);
    }
    SUBCASE("a zstd frame claiming more than it holds, within its blocks' bound") {
        Bytes z = {std::byte{0x28}, std::byte{0xb5}, std::byte{0x2f}, std::byte{0xfd}, std::byte{0xE0}};
        le64(z, 100000);
        for (int b : {0x21, 0, 0, 0x61, 0x62, 0x63, 0x64}) z.push_back(static_cast<std::byte>(b));
        auto s = open_decompressed_source(open_file(test::write_file("cmp-hostile-2.zst", z)));
        REQUIRE(!s);
        CHECK(s.error().code == Errc::corrupt_image);
    }
    SUBCASE("an lz4 frame claiming 1 TiB") {
        Bytes z = {std::byte{0x04}, std::byte{0x22}, std::byte{0x4d}, std::byte{0x18}, std::byte{0x68}, std::byte{0x40}};
        le64(z, tib);
        z.push_back(std::byte{0});  // header checksum (not checked before the size is)
        for (int b : {4, 0, 0, 0x80, 0x61, 0x62, 0x63, 0x64, 0, 0, 0, 0}) z.push_back(static_cast<std::byte>(b));
        auto s = open_decompressed_source(open_file(test::write_file("cmp-hostile.lz4", z)));
        REQUIRE(!s);
        CHECK(s.error().code == Errc::corrupt_image);
        CHECK(s.error().message.find("claims") != std::string::npos);
    }
    SUBCASE("a gzip member whose size field runs past the stream") {
        Bytes z = compress(Compression::gzip, cmp_data(1000, 1));
        z[16] = z[17] = z[18] = z[19] = std::byte{0xff};
        auto s = open_decompressed_source(open_file(test::write_file("cmp-hostile.gz", z)));
        REQUIRE(!s);
        CHECK(s.error().code == Errc::corrupt_image);
    }
    for (Compression c : {Compression::zstd, Compression::lz4}) {
        CAPTURE(compression_name(c));
        SUBCASE("a seek table that lies about a frame's size") {
            const Bytes data = cmp_data(3 * small_unit, 2);
            Bytes z = compress(c, data);
            // Footer: count(4) descriptor(1) magic(4); entries of 8 bytes before it; frame 1's
            // decompressed size is the 4 bytes before entry 2.
            const std::size_t entries = z.size() - 9 - 3 * 8;
            z[entries + 8 + 4] ^= std::byte{0x01};
            DecompressOptions o;
            o.group_bytes = 0;
            auto s = open_decompressed_source(open_file(test::write_file(fmt::format("cmp-hostile-table{}", compression_suffix(c)), z)), o);
            REQUIRE_MESSAGE(s, why(s));  // frame 0 is fine
            CHECK(decompressed_info(*s.value())->units == 3);
            Bytes buf(3 * small_unit);
            auto r = s.value()->read_some(0, buf);
            REQUIRE(!r);
            CHECK(r.error().code == Errc::corrupt_image);
        }
        SUBCASE("a seek table claiming billions of frames is ignored") {
            const Bytes data = cmp_data(2 * small_unit, 2);
            Bytes z = compress(c, data);
            z[z.size() - 9] = z[z.size() - 8] = z[z.size() - 7] = z[z.size() - 6] = std::byte{0xff};
            DecompressOptions o;
            o.group_bytes = 0;
            auto s = open_decompressed_source(open_file(test::write_file(fmt::format("cmp-hostile-count{}", compression_suffix(c)), z)), o);
            REQUIRE_MESSAGE(s, why(s));  // the frames are walked instead; the table is a skippable frame
            CHECK(decompressed_info(*s.value())->units == 2);
            CHECK(read_whole(*s.value()) == data);
        }
    }
}

TEST_CASE("compression: compress_file and decompress_file are atomic") {
    const Bytes data = cmp_data(5 * MiB + 3, 17);
    const auto raw = test::write_file("cmp-file.raw", data);
    for (Compression c : all_codecs) {
        CAPTURE(compression_name(c));
        const auto packed = test::work(fmt::format("cmp-file.raw{}", compression_suffix(c)));
        const auto unpacked = test::work(fmt::format("cmp-file-{}.out", compression_name(c)));
        ::unlink(packed.c_str());
        ::unlink(unpacked.c_str());
        auto r = compress_file(c, 0, raw, packed);
        REQUIRE_MESSAGE(r, why(r));
        auto d = decompress_file(packed, unpacked);
        REQUIRE_MESSAGE(d, why(d));
        CHECK(read_all_file(unpacked) == data);
        // overwrite = false: conflict, and the file stays as it was.
        test::write_file(fmt::format("cmp-file-{}.out", compression_name(c)), Bytes{std::byte{1}});
        auto again = decompress_file(packed, unpacked, false);
        REQUIRE(!again);
        CHECK(again.error().code == Errc::conflict);
        CHECK(read_all_file(unpacked) == Bytes{std::byte{1}});
        auto again_c = compress_file(c, 0, raw, packed, false);
        REQUIRE(!again_c);
        CHECK(again_c.error().code == Errc::conflict);
        CHECK(test::leftover_temporaries(fmt::format("cmp-file-{}.out", compression_name(c))) == 0);
    }
    // A missing input: nothing is created.
    const auto nowhere = test::work("cmp-file-missing.zst");
    auto missing = compress_file(Compression::zstd, 0, test::work("cmp-file-does-not-exist"), nowhere);
    REQUIRE(!missing);
    CHECK(missing.error().code == Errc::not_found);
    CHECK_FALSE(test::exists(nowhere));
    // Not compressed: invalid_argument, nothing created.
    const auto out = test::work("cmp-file-plain.out");
    auto plain = decompress_file(raw, out);
    REQUIRE(!plain);
    CHECK(plain.error().code == Errc::invalid_argument);
    CHECK_FALSE(test::exists(out));
    // A bad level: nothing created.
    auto level = compress_file(Compression::gzip, 42, raw, nowhere);
    REQUIRE(!level);
    CHECK(level.error().code == Errc::invalid_argument);
    CHECK_FALSE(test::exists(nowhere));
    CHECK(test::leftover_temporaries("cmp-file") == 0);
}

TEST_CASE("compression: a failing sink stops the writer for good") {
    int calls = 0;
    auto w = CompressWriter::create(
        Compression::lz4, 0,
        [&calls](std::span<const std::byte>) -> Result<void> {
            if (++calls == 2) return fail(Errc::no_space, "disk full");
            return success();
        },
        2, small_unit);
    REQUIRE(w);
    const Bytes data = cmp_data(10 * small_unit, 1);
    Result<void> r = success();
    for (std::size_t at = 0; at < data.size() && r; at += small_unit) r = w.value().write(std::span<const std::byte>(data).subspan(at, small_unit));
    if (r) r = w.value().finish();
    REQUIRE(!r);
    CHECK(r.error().code == Errc::no_space);
    auto after = w.value().write(std::span<const std::byte>(data).first(10));
    REQUIRE(!after);
    CHECK(after.error().code == Errc::no_space);
    CHECK_FALSE(w.value().finished());
}

TEST_CASE("compression: a compressed stream inside another reads through both") {
    const Bytes data = cmp_data(5 * small_unit + 7, 18);
    const Bytes inner = compress(Compression::gzip, data);
    const auto path = test::write_file("cmp-nested.gz.zst", compress(Compression::zstd, inner));
    DecompressOptions o;
    o.group_bytes = 0;
    auto outer = open_plain(path, o);
    CHECK(read_whole(*outer) == inner);
    auto plain = decompress_if_compressed(outer, o);
    REQUIRE_MESSAGE(plain, why(plain));
    CHECK(decompressed_info(*plain.value())->compression == Compression::gzip);
    CHECK(plain.value()->identity() == outer->identity() + "#decompressed");
    check_random_reads(*plain.value(), data, small_unit, 60, 2);
}

TEST_CASE("compression: reads stop once cancelled") {
    const Bytes data = cmp_data(3 * small_unit, 19);
    for (bool indexed : {true, false}) {
        CAPTURE(indexed);
        const auto path = test::write_file("cmp-cancel.lz4", compress(Compression::lz4, data));
        DecompressOptions o;
        o.allow_index = indexed;
        auto s = open_plain(path, o);
        o.cancel.cancel();
        Bytes buf(1000);
        auto r = s->read_some(2 * small_unit, buf);
        REQUIRE(!r);
        CHECK(r.error().code == Errc::cancelled);
    }
}

TEST_CASE("compression: a zstd window over 128 MiB is unsupported") {
    if (!have("zstd")) {
        MESSAGE("zstd is not installed: not checked");
        return;
    }
    const auto raw = test::write_file("cmp-long.raw", cmp_data(300 * KiB, 20));
    const auto zst = test::work("cmp-long.zst");
    // Through a pipe zstd cannot size the window to the input: it declares 1 GiB.
    REQUIRE(sh(fmt::format("cat '{}' | zstd -q -c --long=30 > '{}'", raw, zst)) == 0);
    auto s = open_decompressed_source(open_file(zst));
    REQUIRE(!s);
    CHECK(s.error().code == Errc::unsupported);
    CHECK(s.error().message.find("--long") != std::string::npos);
}

}  // namespace compression_test
