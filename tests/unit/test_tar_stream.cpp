// Tar stream sources: the disk.raw of a .tar.gz (or a plain .tar, or a plain stream that is the
// disk) read while the stream arrives. Archives are built here (tar headers by hand, gzip with
// zlib) and handed over by an in-memory reader in small pieces, so member, block and gzip member
// boundaries fall anywhere in a piece. Every case checks exact bytes or exact error codes; none
// looks at the clock.
#include <doctest/doctest.h>

#include "io/tar.hpp"
#include "io/tar_stream_source.hpp"
#include "scratch.hpp"

#include <fmt/format.h>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace hypersdk;
using Bytes = std::vector<std::byte>;

namespace {

constexpr std::size_t KiB = 1u << 10;
constexpr std::size_t MiB = 1u << 20;

// A failed result's code and message, for assertion output; empty for a success.
template <class T>
std::string why(const Result<T> &r) {
    return r ? std::string() : fmt::format("{}: {}", errc_name(r.error().code), r.error().message);
}

// A disk of 64 KiB regions: zero runs, compressible text and incompressible bytes, with data in
// its last 4 KiB (so the held-back last byte is not a zero that a bug could fake).
Bytes disk_pattern(std::size_t size, unsigned seed) {
    Bytes out(size);
    const std::size_t region = 64 * KiB;
    const std::string_view text = "libhypersdk tar stream test: the quick brown fox jumps over the lazy dog. ";
    for (std::size_t at = 0, i = 0; at < size; at += region, ++i) {
        const std::size_t n = std::min(region, size - at);
        switch ((i * 7 + seed) % 5) {
        case 0:
        case 3: break;  // a zero run
        case 1:
            for (std::size_t k = 0; k < n; ++k) out[at + k] = static_cast<std::byte>(text[(k + i) % text.size()]);
            break;
        default: {
            const auto r = test::pattern(n, seed * 1000 + static_cast<unsigned>(i));
            std::copy(r.begin(), r.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
        }
        }
    }
    const auto tail = test::pattern(4 * KiB, seed + 77);
    std::copy(tail.begin(), tail.end(), out.end() - static_cast<std::ptrdiff_t>(tail.size()));
    return out;
}

Bytes bytes_of(std::string_view s) {
    const auto b = std::as_bytes(std::span(s.data(), s.size()));
    return Bytes(b.begin(), b.end());
}

void append(Bytes &to, std::span<const std::byte> b) { to.insert(to.end(), b.begin(), b.end()); }

// A tar entry: its header (announcing `declared` bytes when given), the data, padding to a block.
void tar_entry(Bytes &tar, const std::string &name, std::span<const std::byte> data, char type = '0',
               std::optional<std::uint64_t> declared = std::nullopt) {
    auto h = io::make_tar_header(name, declared.value_or(data.size()), 0, type);
    REQUIRE_MESSAGE(h, why(h));
    append(tar, h.value());
    append(tar, data);
    tar.resize((tar.size() + 511) / 512 * 512);
}

// The two end blocks, and padding to a 10 KiB record as tar(1) writes.
void tar_end(Bytes &tar) {
    tar.resize(tar.size() + 1024);
    tar.resize((tar.size() + 10239) / 10240 * 10240);
}

// One "<len> key=value\n" pax record.
std::string pax_record(std::string_view key, std::string_view value) {
    const std::size_t base = key.size() + value.size() + 3;  // ' ', '=', '\n'
    std::size_t len = base + 1;
    while (std::to_string(len).size() + base != len) ++len;
    return fmt::format("{} {}={}\n", len, key, value);
}

// A tar holding manifest.json, then `disk` as disk.raw, then the end blocks.
Bytes export_tar(const Bytes &disk) {
    Bytes tar;
    tar_entry(tar, "manifest.json", bytes_of(R"({"licenses": [], "format": "raw"})"));
    tar_entry(tar, "disk.raw", disk);
    tar_end(tar);
    return tar;
}

// One gzip member (zlib's gzip wrapper: windowBits 31).
Bytes gzip(std::span<const std::byte> in, int level = 6) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    Bytes out(deflateBound(&z, static_cast<uLong>(in.size())) + 64);
    z.next_in = reinterpret_cast<Bytef *>(const_cast<std::byte *>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef *>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, Z_FINISH);
    const auto total = z.total_out;
    deflateEnd(&z);
    REQUIRE(rc == Z_STREAM_END);
    out.resize(total);
    return out;
}

// The stored object, handed to the sink `piece` bytes at a time; `passes` counts the reads of
// the stream from its first byte.
struct Stored {
    std::shared_ptr<const Bytes> bytes;
    std::size_t piece = 7 * KiB;
    std::shared_ptr<std::atomic<int>> passes = std::make_shared<std::atomic<int>>(0);

    explicit Stored(Bytes b, std::size_t piece_bytes = 7 * KiB)
        : bytes(std::make_shared<const Bytes>(std::move(b))), piece(piece_bytes) {}

    [[nodiscard]] io::StreamReader reader() const {
        return [bytes = bytes, piece = piece, passes = passes](std::uint64_t offset, const io::StreamSink &sink,
                                                              const CancelToken &stop) -> Result<void> {
            if (offset == 0) ++*passes;
            for (std::uint64_t at = offset; at < bytes->size();) {
                HSDK_TRYV(stop.check());
                const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(piece, bytes->size() - at));
                HSDK_TRYV(sink(std::span<const std::byte>(bytes->data() + at, n)));
                at += n;
            }
            return success();
        };
    }
};

io::TarStreamOptions options(std::string name, std::size_t window = 64 * MiB) {
    io::TarStreamOptions o;
    o.name = std::move(name);
    o.window_bytes = window;
    return o;
}

// Empty when equal; else where they first differ.
std::string diff(std::span<const std::byte> got, std::span<const std::byte> want) {
    if (got.size() != want.size()) return fmt::format("{} bytes, {} expected", got.size(), want.size());
    const auto m = std::mismatch(got.begin(), got.end(), want.begin());
    if (m.first == got.end()) return {};
    return fmt::format("first difference at {:#x}", m.first - got.begin());
}

// The whole source in ascending reads of `chunk` bytes.
Result<Bytes> read_all(const ByteSource &src, std::size_t chunk = MiB) {
    Bytes out(static_cast<std::size_t>(src.size()));
    for (std::size_t at = 0; at < out.size(); at += chunk) {
        const std::size_t n = std::min(chunk, out.size() - at);
        HSDK_TRYV(src.read_exact(at, std::span<std::byte>(out.data() + at, n)));
    }
    return out;
}

Result<Bytes> read_range(const ByteSource &src, std::uint64_t offset, std::size_t n) {
    Bytes out(n);
    HSDK_TRYV(src.read_exact(offset, out));
    return out;
}

// `threads` threads read `chunk`-sized pieces at interleaved offsets (thread t reads pieces t,
// t + threads, ...); empty when every read returned the right bytes, else what went wrong.
std::string read_in_threads(const ByteSource &src, const Bytes &want, std::size_t chunk, unsigned threads) {
    std::vector<std::string> problems(threads);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            Bytes buf(chunk);
            for (std::size_t at = t * chunk; at < want.size(); at += threads * chunk) {
                const std::size_t n = std::min(chunk, want.size() - at);
                auto r = src.read_exact(at, std::span<std::byte>(buf.data(), n));
                if (!r) {
                    problems[t] = fmt::format("thread {}: read at {:#x} failed: {}", t, at, r.error().message);
                    return;
                }
                if (std::memcmp(buf.data(), want.data() + at, n) != 0) {
                    problems[t] = fmt::format("thread {}: wrong bytes at {:#x}", t, at);
                    return;
                }
            }
        });
    }
    for (auto &th : pool) th.join();
    std::string all;
    for (const auto &p : problems) all += p.empty() ? "" : p + "; ";
    return all;
}

}  // namespace

TEST_CASE("a tar.gz holding manifest.json and disk.raw reads as the disk in ascending reads and from two threads") {
    const Bytes disk = disk_pattern(5 * MiB + 3000, 1);
    const Stored stored(gzip(export_tar(disk)));

    auto s = io::open_tar_stream_source(stored.reader(), options("image.tar.gz"));
    REQUIRE_MESSAGE(s, why(s));
    const auto &src = *s.value();
    CHECK(src.size() == disk.size());
    CHECK(src.native_format() == "raw");
    CHECK(src.name() == "image.tar.gz (disk.raw)");
    auto got = read_all(src);
    REQUIRE_MESSAGE(got, why(got));
    CHECK(diff(got.value(), disk) == "");
    CHECK(stored.passes->load() == 1);
    std::byte past{};
    auto end = src.read_some(disk.size(), std::span<std::byte>(&past, 1));
    REQUIRE_MESSAGE(end, why(end));
    CHECK(end.value() == 0);

    SUBCASE("two threads, the default window") {
        auto s2 = io::open_tar_stream_source(stored.reader(), options("image.tar.gz"));
        REQUIRE_MESSAGE(s2, why(s2));
        CHECK(read_in_threads(*s2.value(), disk, MiB, 2) == "");
        CHECK(read_in_threads(*s2.value(), disk, 100 * KiB, 2) == "");  // the stream is complete: all again
    }
    SUBCASE("two threads, a small window (a thread falling behind restarts the stream; the bytes stay right)") {
        auto s2 = io::open_tar_stream_source(stored.reader(), options("image.tar.gz", MiB));
        REQUIRE_MESSAGE(s2, why(s2));
        CHECK(read_in_threads(*s2.value(), disk, 256 * KiB, 2) == "");
    }
}

TEST_CASE("a plain (uncompressed) tar reads the same") {
    const Bytes disk = disk_pattern(3 * MiB + 512 + 17, 2);
    const Stored stored(export_tar(disk), 509);
    auto s = io::open_tar_stream_source(stored.reader(), options("image.tar"));
    REQUIRE_MESSAGE(s, why(s));
    CHECK(s.value()->size() == disk.size());
    CHECK(s.value()->native_format() == "raw");
    auto got = read_all(*s.value(), 300 * KiB);
    REQUIRE_MESSAGE(got, why(got));
    CHECK(diff(got.value(), disk) == "");
    CHECK(stored.passes->load() == 1);
}

TEST_CASE("a multi-member gzip (pigz or concatenated files) reads as one stream") {
    const Bytes disk = disk_pattern(4 * MiB + 1234, 3);
    const Bytes tar = export_tar(disk);
    // Cut inside the first header, inside disk.raw's data, and just before the end blocks.
    const std::size_t cuts[] = {0, 300, 2 * MiB + 4321, tar.size() - 10240 + 7, tar.size()};
    Bytes gz;
    for (std::size_t i = 0; i + 1 < std::size(cuts); ++i)
        append(gz, gzip(std::span<const std::byte>(tar).subspan(cuts[i], cuts[i + 1] - cuts[i]), i % 2 ? 1 : 9));
    const Stored stored(std::move(gz));
    auto s = io::open_tar_stream_source(stored.reader(), options("multi.tar.gz"));
    REQUIRE_MESSAGE(s, why(s));
    CHECK(s.value()->size() == disk.size());
    auto got = read_all(*s.value());
    REQUIRE_MESSAGE(got, why(got));
    CHECK(diff(got.value(), disk) == "");
}

TEST_CASE("pax and GNU long names select the member") {
    const Bytes disk = disk_pattern(2 * MiB + 99, 4);
    const Bytes decoy = disk_pattern(MiB + 5, 5);
    const std::string long_name = std::string(120, 'd') + "/disk.raw";
    Bytes tar;

    SUBCASE("pax 'x' headers: path=disk.raw names a member whose header says otherwise, and the reverse") {
        tar_entry(tar, "manifest.json", bytes_of("{}"));
        const Bytes away = bytes_of(pax_record("path", "disk.raw.orig"));
        tar_entry(tar, "PaxHeaders.0/disk.raw", away, 'x');
        tar_entry(tar, "disk.raw", decoy);  // really disk.raw.orig
        const Bytes here = bytes_of(pax_record("mtime", "1700000000.5") + pax_record("path", "disk.raw"));
        tar_entry(tar, "PaxHeaders.0/not-the-disk", here, 'x');
        tar_entry(tar, "not-the-disk", disk);
        tar_end(tar);
        auto s = io::open_tar_stream_source(Stored(gzip(tar)).reader(), options("pax.tar.gz"));
        REQUIRE_MESSAGE(s, why(s));
        CHECK(s.value()->size() == disk.size());
        auto got = read_all(*s.value());
        REQUIRE_MESSAGE(got, why(got));
        CHECK(diff(got.value(), disk) == "");
    }
    SUBCASE("GNU 'L' headers: a name longer than a header holds, and disk.raw behind a LongLink") {
        const auto link = [&](const std::string &name) {
            Bytes n = bytes_of(name);
            n.push_back(std::byte{0});
            tar_entry(tar, "././@LongLink", n, 'L');
        };
        link(long_name);
        tar_entry(tar, long_name.substr(0, 100), decoy);
        link("disk.raw");
        tar_entry(tar, "yyy", disk);
        tar_end(tar);
        const Bytes gz = gzip(tar);

        auto s = io::open_tar_stream_source(Stored(gz).reader(), options("gnu.tar.gz"));
        REQUIRE_MESSAGE(s, why(s));
        CHECK(s.value()->size() == disk.size());
        auto got = read_all(*s.value());
        REQUIRE_MESSAGE(got, why(got));
        CHECK(diff(got.value(), disk) == "");

        auto o = options("gnu.tar.gz");
        o.member = long_name;
        auto l = io::open_tar_stream_source(Stored(gz).reader(), o);
        REQUIRE_MESSAGE(l, why(l));
        CHECK(l.value()->size() == decoy.size());
        auto got_decoy = read_all(*l.value());
        REQUIRE_MESSAGE(got_decoy, why(got_decoy));
        CHECK(diff(got_decoy.value(), decoy) == "");
    }
}

TEST_CASE("an archive without the member fails to open with not_found and options.member chooses another") {
    const Bytes disk = disk_pattern(MiB + 300, 6);
    Bytes tar;
    tar_entry(tar, "manifest.json", bytes_of(R"({"format": "raw"})"));
    tar_entry(tar, "images/root.img", disk);
    tar_end(tar);
    const Bytes gz = gzip(tar);

    auto missing = io::open_tar_stream_source(Stored(gz).reader(), options("nodisk.tar.gz"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == Errc::not_found);
    CHECK(missing.error().message.find("nodisk.tar.gz") != std::string::npos);
    CHECK(missing.error().message.find("'disk.raw'") != std::string::npos);

    // An archive without end blocks (the stream just stops) says the same.
    Bytes bare;
    tar_entry(bare, "manifest.json", bytes_of("{}"));
    auto missing_bare = io::open_tar_stream_source(Stored(gzip(bare)).reader(), options("bare.tar.gz"));
    REQUIRE_FALSE(missing_bare);
    CHECK(missing_bare.error().code == Errc::not_found);

    auto o = options("nodisk.tar.gz");
    o.member = "images/root.img";
    auto s = io::open_tar_stream_source(Stored(gz).reader(), o);
    REQUIRE_MESSAGE(s, why(s));
    CHECK(s.value()->size() == disk.size());
    CHECK(s.value()->name() == "nodisk.tar.gz (images/root.img)");
    auto got = read_all(*s.value());
    REQUIRE_MESSAGE(got, why(got));
    CHECK(diff(got.value(), disk) == "");

    o.member = "";  // the first regular file
    auto first = io::open_tar_stream_source(Stored(gz).reader(), o);
    REQUIRE_MESSAGE(first, why(first));
    auto manifest = read_all(*first.value());
    REQUIRE_MESSAGE(manifest, why(manifest));
    CHECK(diff(manifest.value(), bytes_of(R"({"format": "raw"})")) == "");
}

TEST_CASE("a read behind the window reads the stream again from its start") {
    const Bytes disk = disk_pattern(6 * MiB + 777, 7);
    const std::size_t size = disk.size();
    const Stored stored(gzip(export_tar(disk)));
    auto s = io::open_tar_stream_source(stored.reader(), options("window.tar.gz", MiB));
    REQUIRE_MESSAGE(s, why(s));
    const auto &src = *s.value();
    const auto want = [&](std::size_t at, std::size_t n) { return std::span<const std::byte>(disk).subspan(at, n); };

    SUBCASE("after the end region was read (the stream is complete)") {
        auto tail = read_range(src, size - MiB, MiB);
        REQUIRE_MESSAGE(tail, why(tail));
        CHECK(diff(tail.value(), want(size - MiB, MiB)) == "");
        CHECK(stored.passes->load() == 1);
        auto head = read_range(src, 0, MiB);
        REQUIRE_MESSAGE(head, why(head));
        CHECK(diff(head.value(), want(0, MiB)) == "");
        CHECK(stored.passes->load() == 2);
        // The second pass goes on to the end.
        auto all = read_all(src);
        REQUIRE_MESSAGE(all, why(all));
        CHECK(diff(all.value(), disk) == "");
        CHECK(stored.passes->load() == 2);
    }
    SUBCASE("while the stream is still being read") {
        for (std::size_t at = 0; at < 4 * MiB; at += MiB) {
            auto r = read_range(src, at, MiB);
            REQUIRE_MESSAGE(r, why(r));
            CHECK(diff(r.value(), want(at, MiB)) == "");
        }
        CHECK(stored.passes->load() == 1);
        auto head = read_range(src, 4096, 64 * KiB);
        REQUIRE_MESSAGE(head, why(head));
        CHECK(diff(head.value(), want(4096, 64 * KiB)) == "");
        CHECK(stored.passes->load() == 2);
        auto all = read_all(src);
        REQUIRE_MESSAGE(all, why(all));
        CHECK(diff(all.value(), disk) == "");
        CHECK(stored.passes->load() == 2);
    }
    SUBCASE("a read larger than the window, behind it") {
        std::byte last{};
        auto r = src.read_exact(size - 1, std::span<std::byte>(&last, 1));
        REQUIRE_MESSAGE(r, why(r));
        CHECK(last == disk.back());
        auto big = read_range(src, 0, 3 * MiB);
        REQUIRE_MESSAGE(big, why(big));
        CHECK(diff(big.value(), want(0, 3 * MiB)) == "");
        CHECK(stored.passes->load() == 2);
    }
}

TEST_CASE("a corrupt gzip stream fails the reads it reaches and never hands out the disk's last byte") {
    const Bytes disk = disk_pattern(4 * MiB + 4096, 8);
    Bytes gz = gzip(export_tar(disk));
    const std::size_t size = disk.size();
    const auto last_byte = [&](const ByteSource &src) {
        std::byte b{};
        return src.read_exact(size - 1, std::span<std::byte>(&b, 1));
    };

    SUBCASE("a flipped byte inside the compressed data") {
        gz[gz.size() / 2] ^= std::byte{0x55};
        auto s = io::open_tar_stream_source(Stored(gz).reader(), options("flipped.tar.gz"));
        REQUIRE_MESSAGE(s, why(s));
        auto all = read_all(*s.value());
        REQUIRE_FALSE(all);
        CHECK(all.error().code == Errc::corrupt_image);
        auto last = last_byte(*s.value());
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::corrupt_image);
        CHECK(last.error().message.find("flipped.tar.gz") != std::string::npos);
    }
    SUBCASE("a wrong CRC in the gzip trailer") {
        gz[gz.size() - 8] ^= std::byte{0x01};
        auto s = io::open_tar_stream_source(Stored(gz).reader(), options("crc.tar.gz"));
        REQUIRE_MESSAGE(s, why(s));
        // The bytes before the last may be handed out before the trailer is read (the ones decoded
        // with the trailer may not): what a read returns is right, or it fails as corrupt.
        auto most = read_range(*s.value(), 0, size - 1);
        if (most) CHECK(diff(most.value(), std::span<const std::byte>(disk).first(size - 1)) == "");
        else CHECK(most.error().code == Errc::corrupt_image);
        auto last = last_byte(*s.value());
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::corrupt_image);
        CHECK(last.error().message.find("crc.tar.gz") != std::string::npos);
    }
    SUBCASE("a wrong length in the gzip trailer") {
        gz[gz.size() - 1] ^= std::byte{0x01};
        auto s = io::open_tar_stream_source(Stored(gz).reader(), options("isize.tar.gz"));
        REQUIRE_MESSAGE(s, why(s));
        auto last = last_byte(*s.value());
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::corrupt_image);
    }
    SUBCASE("a truncated gzip stream (its last 100 bytes dropped)") {
        gz.resize(gz.size() - 100);
        auto s = io::open_tar_stream_source(Stored(gz).reader(), options("short.tar.gz"));
        REQUIRE_MESSAGE(s, why(s));
        auto all = read_all(*s.value());
        REQUIRE_FALSE(all);
        CHECK(all.error().code == Errc::corrupt_image);
        auto last = last_byte(*s.value());
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::corrupt_image);
    }
    SUBCASE("a gzip stream cut inside its trailer (every disk byte arrived)") {
        gz.resize(gz.size() - 3);
        auto s = io::open_tar_stream_source(Stored(gz).reader(), options("trailer.tar.gz"));
        REQUIRE_MESSAGE(s, why(s));
        auto most = read_range(*s.value(), 0, size - 1);
        REQUIRE_MESSAGE(most, why(most));
        auto last = last_byte(*s.value());
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::corrupt_image);
    }
}

TEST_CASE("a disk.raw whose data runs past the end of the archive fails near its end") {
    const Bytes disk = disk_pattern(2 * MiB + 100, 9);
    const std::uint64_t declared = disk.size() + 64 * KiB;
    Bytes tar;
    tar_entry(tar, "manifest.json", bytes_of("{}"));
    tar_entry(tar, "disk.raw", disk, '0', declared);  // and the archive ends with the data
    for (const bool compressed : {true, false}) {
        CAPTURE(compressed);
        auto s = io::open_tar_stream_source(Stored(compressed ? gzip(tar) : tar).reader(), options(compressed ? "cut.tar.gz" : "cut.tar"));
        REQUIRE_MESSAGE(s, why(s));
        const auto &src = *s.value();
        CHECK(src.size() == declared);
        auto present = read_range(src, 0, MiB);
        REQUIRE_MESSAGE(present, why(present));
        CHECK(diff(present.value(), std::span<const std::byte>(disk).first(MiB)) == "");
        auto across = read_range(src, disk.size() - 4096, 8192);
        REQUIRE_FALSE(across);
        CHECK(across.error().code == Errc::corrupt_image);
        CHECK(across.error().message.find("truncated") != std::string::npos);
        std::byte b{};
        auto last = src.read_exact(declared - 1, std::span<std::byte>(&b, 1));
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::corrupt_image);
    }
}

namespace {

struct TestCheck final : io::StreamCheck {
    std::shared_ptr<std::atomic<std::uint64_t>> seen;
    bool pass;
    TestCheck(std::shared_ptr<std::atomic<std::uint64_t>> s, bool p) : seen(std::move(s)), pass(p) {}
    void update(std::span<const std::byte> stored) override { *seen += stored.size(); }
    Result<void> finish() override {
        if (pass) return success();
        return fail(Errc::checksum_mismatch, "test check: the stored checksum does not match");
    }
};

}  // namespace

TEST_CASE("a plain stream is the disk (tar off) and its last byte waits for the StreamCheck") {
    const Bytes disk = disk_pattern(3 * MiB + 11, 10);
    const Stored stored(disk);
    auto seen = std::make_shared<std::atomic<std::uint64_t>>(0);
    auto o = options("glance://image");
    o.tar = false;
    o.size = disk.size();

    SUBCASE("a passing check: every byte") {
        o.make_check = [seen] { return std::make_unique<TestCheck>(seen, true); };
        auto s = io::open_tar_stream_source(stored.reader(), o);
        REQUIRE_MESSAGE(s, why(s));
        CHECK(s.value()->size() == disk.size());
        CHECK(s.value()->native_format() == "raw");
        auto all = read_all(*s.value());
        REQUIRE_MESSAGE(all, why(all));
        CHECK(diff(all.value(), disk) == "");
        CHECK(seen->load() == disk.size());
    }
    SUBCASE("a failing check: the last byte's read fails with the check's error") {
        o.make_check = [seen] { return std::make_unique<TestCheck>(seen, false); };
        auto s = io::open_tar_stream_source(stored.reader(), o);
        REQUIRE_MESSAGE(s, why(s));
        auto most = read_range(*s.value(), 0, disk.size() - 1);
        REQUIRE_MESSAGE(most, why(most));
        CHECK(diff(most.value(), std::span<const std::byte>(disk).first(disk.size() - 1)) == "");
        std::byte b{};
        auto last = s.value()->read_exact(disk.size() - 1, std::span<std::byte>(&b, 1));
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::checksum_mismatch);
        CHECK(last.error().message == "test check: the stored checksum does not match");
        CHECK(seen->load() == disk.size());
    }
    SUBCASE("a stream shorter than announced is truncated, a longer one a remote error") {
        o.size = disk.size() + 1;
        auto s = io::open_tar_stream_source(stored.reader(), o);
        REQUIRE_MESSAGE(s, why(s));
        auto all = read_all(*s.value());
        REQUIRE_FALSE(all);
        CHECK(all.error().code == Errc::corrupt_image);
        o.size = disk.size() - 1;
        auto l = io::open_tar_stream_source(stored.reader(), o);
        REQUIRE_MESSAGE(l, why(l));
        auto all_l = read_all(*l.value());
        REQUIRE_FALSE(all_l);
        CHECK(all_l.error().code == Errc::remote_error);
    }
}

namespace {

// Hands on the first `first` bytes, then waits for bytes that never come (a stalled connection)
// until `stop` is cancelled.
io::StreamReader stalled_reader(std::shared_ptr<const Bytes> bytes, std::size_t first, std::shared_ptr<std::atomic<bool>> returned) {
    return [bytes, first, returned](std::uint64_t, const io::StreamSink &sink, const CancelToken &stop) -> Result<void> {
        for (std::size_t at = 0; at < first; at += 4 * KiB) {
            auto r = sink(std::span<const std::byte>(bytes->data() + at, std::min(4 * KiB, first - at)));
            if (!r) {
                *returned = true;
                return r;
            }
        }
        while (!stop.is_cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        *returned = true;
        return fail(Errc::cancelled, "stalled reader: stopped");
    };
}

}  // namespace

TEST_CASE("destroying the source stops its producer even while the reader is blocked") {
    const Bytes disk = disk_pattern(3 * MiB, 11);
    const auto gz = std::make_shared<const Bytes>(gzip(export_tar(disk)));
    auto returned = std::make_shared<std::atomic<bool>>(false);

    SUBCASE("the reader waits for bytes that never come") {
        {
            auto s = io::open_tar_stream_source(stalled_reader(gz, 64 * KiB, returned), options("stalled.tar.gz"));
            REQUIRE_MESSAGE(s, why(s));
            CHECK(s.value()->size() == disk.size());
            auto head = read_range(*s.value(), 0, 4096);
            REQUIRE_MESSAGE(head, why(head));
            CHECK(diff(head.value(), std::span<const std::byte>(disk).first(4096)) == "");
        }  // the destructor cancels `stop` and joins the producer
        CHECK(returned->load());
    }
    SUBCASE("the producer waits for readers to make room in the window") {
        {
            auto s = io::open_tar_stream_source(stalled_reader(gz, gz->size(), returned), options("full.tar.gz", MiB));
            REQUIRE_MESSAGE(s, why(s));
        }
        CHECK(returned->load());
    }
    SUBCASE("cancelling the options' token ends a waiting read with cancelled") {
        auto o = options("cancel.tar.gz");
        CancelToken cancel;
        o.cancel = cancel;
        auto s = io::open_tar_stream_source(stalled_reader(gz, 64 * KiB, returned), o);
        REQUIRE_MESSAGE(s, why(s));
        std::thread canceller([cancel] {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            cancel.cancel();
        });
        std::byte b{};
        auto last = s.value()->read_exact(disk.size() - 1, std::span<std::byte>(&b, 1));
        canceller.join();
        REQUIRE_FALSE(last);
        CHECK(last.error().code == Errc::cancelled);
    }
}

TEST_CASE("is_tar_stream_name knows .tar.gz .tgz and .tar in any case and ignores query and fragment") {
    CHECK(io::is_tar_stream_name("disk.tar.gz"));
    CHECK(io::is_tar_stream_name("/images/export.TAR.GZ"));
    CHECK(io::is_tar_stream_name("image.tgz"));
    CHECK(io::is_tar_stream_name("IMAGE.TGZ"));
    CHECK(io::is_tar_stream_name("image.tar"));
    CHECK(io::is_tar_stream_name("https://host/b/image.tar.gz?X-Amz-Signature=abc&x=y.raw"));
    CHECK(io::is_tar_stream_name("https://host/b/image.tgz#frag.qcow2"));
    CHECK(io::is_tar_stream_name("gs://bucket/export.tar.gz"));
    CHECK_FALSE(io::is_tar_stream_name("appliance.ova"));
    CHECK_FALSE(io::is_tar_stream_name("disk.gz"));
    CHECK_FALSE(io::is_tar_stream_name("disk.raw"));
    CHECK_FALSE(io::is_tar_stream_name("https://host/image.raw?name=x.tar.gz"));
    CHECK_FALSE(io::is_tar_stream_name("tar.gz.qcow2"));
    CHECK_FALSE(io::is_tar_stream_name(""));
    CHECK_FALSE(io::is_tar_stream_name(".ta"));
}
