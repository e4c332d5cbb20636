// Queued direct writes go into space reserved ahead of them; once synced, the file is exactly as
// long and as sparse as without the reservation, and reads back what was written.
#include "io/file.hpp"
#include "io/write_behind.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;
using namespace hypersdk::io;

namespace {

constexpr std::uint64_t MiB = 1u << 20;

struct Aligned {
    explicit Aligned(std::size_t n, unsigned char fill) : size(n) {
        void *p = nullptr;
        REQUIRE(::posix_memalign(&p, 4096, n) == 0);
        data.reset(static_cast<std::byte *>(p));
        std::memset(p, fill, n);
    }
    std::span<const std::byte> span() const { return {data.get(), size}; }
    struct Free {
        void operator()(std::byte *p) const { std::free(p); }
    };
    std::unique_ptr<std::byte, Free> data;
    std::size_t size;
};

struct Stat {
    std::uint64_t size, allocated;
};
Stat stat_of(const std::string &path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return {static_cast<std::uint64_t>(st.st_size), static_cast<std::uint64_t>(st.st_blocks) * 512};
}

// A fresh file with direct writes through a write-behind, as the converters open their outputs.
File direct_file(const std::string &path, WriteBehind &queue) {
    ::unlink(path.c_str());
    auto f = File::create_new(path);
    REQUIRE(f);
    File file = std::move(f).value();
    REQUIRE_MESSAGE(file.enable_direct_writes(), "the test folder's file system refuses O_DIRECT");
    file.attach_write_behind(&queue);
    return file;
}

void check_bytes(const File &file, std::uint64_t offset, std::size_t n, unsigned char expected) {
    std::vector<std::byte> got(n);
    REQUIRE(file.read_exact(offset, got));
    for (std::size_t i = 0; i < n; i += 4096) REQUIRE(static_cast<unsigned char>(got[i]) == expected);
}

void check_text(const File &file, std::uint64_t offset, const std::string &text) {
    std::vector<std::byte> back(text.size());
    REQUIRE(file.read_exact(offset, back));
    CHECK(std::memcmp(back.data(), text.data(), text.size()) == 0);
}

void close_and_remove(File &file, const std::string &path) {
    REQUIRE(file.close());
    ::unlink(path.c_str());
}

}  // namespace

TEST_CASE("appended direct writes: reserved while writing, trimmed and sparse after sync") {
    const auto path = work("reserve-append.bin");
    WriteBehind queue;
    File file = direct_file(path, queue);
    const Aligned a(MiB, 0xA1), b(MiB, 0xB2);
    // Appends with a 3 MiB gap between them, as a writer that leaves part of a block unwritten.
    REQUIRE(file.write_behind(0, a.span()));
    REQUIRE(file.write_behind(4 * MiB, b.span()));
    REQUIRE(queue.drain());
    CHECK(stat_of(path).size > 5 * MiB);  // space reserved past the data
    CHECK(file.size().value() == 5 * MiB);  // but the file's size is what was written
    REQUIRE(file.sync());
    const Stat s = stat_of(path);
    CHECK(s.size == 5 * MiB);
    CHECK(s.allocated >= 2 * MiB);
    CHECK(s.allocated <= 2 * MiB + 64 * 1024);  // the gap is a hole again
    check_bytes(file, 0, MiB, 0xA1);
    check_bytes(file, MiB, 3 * MiB, 0x00);
    check_bytes(file, 4 * MiB, MiB, 0xB2);
    close_and_remove(file, path);
}

TEST_CASE("direct writes into a sized sparse file keep its size and its holes") {
    const auto path = work("reserve-sized.bin");
    WriteBehind queue;
    File file = direct_file(path, queue);
    REQUIRE(file.truncate(512 * MiB));
    const Aligned a(2 * MiB, 0x5A);
    // Ascending writes with holes between them, then one far back (outside the window).
    for (std::uint64_t at : {8 * MiB, 12 * MiB, 100 * MiB, 300 * MiB, 4 * MiB}) REQUIRE(file.write_behind(at, a.span()));
    // A buffered write inside the window counts as written too.
    const std::string tail = "tail written through the page cache";
    REQUIRE(file.write_all(100 * MiB + 2 * MiB + 5, std::as_bytes(std::span(tail.data(), tail.size()))));
    REQUIRE(queue.drain());
    CHECK(file.size().value() == 512 * MiB);
    REQUIRE(file.sync());
    const Stat s = stat_of(path);
    CHECK(s.size == 512 * MiB);
    CHECK(s.allocated >= 10 * MiB);
    CHECK(s.allocated <= 10 * MiB + 64 * 1024);
    for (std::uint64_t at : {4 * MiB, 8 * MiB, 12 * MiB, 100 * MiB, 300 * MiB}) check_bytes(file, at, 2 * MiB, 0x5A);
    check_bytes(file, 0, 4 * MiB, 0x00);
    check_bytes(file, 14 * MiB, 86 * MiB, 0x00);
    check_text(file, 100 * MiB + 2 * MiB + 5, tail);
    close_and_remove(file, path);
}

TEST_CASE("a shrinking truncate during reservation sets the final size") {
    const auto path = work("reserve-truncate.bin");
    WriteBehind queue;
    File file = direct_file(path, queue);
    const Aligned a(MiB, 0x11);
    for (std::uint64_t i = 0; i < 6; ++i) REQUIRE(file.write_behind(i * MiB, a.span()));
    REQUIRE(queue.drain());
    REQUIRE(file.truncate(3 * MiB + 4096));  // as the qcow2 writer cuts its file to the last cluster
    REQUIRE(file.close());
    const Stat s = stat_of(path);
    CHECK(s.size == 3 * MiB + 4096);
    CHECK(s.allocated <= 3 * MiB + 8192);
    ::unlink(path.c_str());
}

TEST_CASE("data written before the reservation starts is never taken for a gap") {
    const auto path = work("reserve-meta.bin");
    WriteBehind queue;
    File file = direct_file(path, queue);
    // Metadata far out first (as a writer's tables), then data below and above it.
    const std::string meta = "metadata written before any data";
    REQUIRE(file.write_all(40 * MiB, std::as_bytes(std::span(meta.data(), meta.size()))));
    const Aligned a(MiB, 0x77);
    REQUIRE(file.write_behind(0, a.span()));
    REQUIRE(file.write_behind(41 * MiB, a.span()));
    REQUIRE(file.write_behind(80 * MiB, a.span()));
    REQUIRE(queue.drain());
    REQUIRE(file.sync());
    check_text(file, 40 * MiB, meta);
    for (std::uint64_t at : {0 * MiB, 41 * MiB, 80 * MiB}) check_bytes(file, at, MiB, 0x77);
    check_bytes(file, 42 * MiB, 38 * MiB, 0x00);
    CHECK(stat_of(path).size == 81 * MiB);
    CHECK(stat_of(path).allocated <= 3 * MiB + 64 * 1024);
    close_and_remove(file, path);
}
