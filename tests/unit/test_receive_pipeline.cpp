// The receiving side of downloads (export/receive_pipeline.cpp): bytes appended in any pieces reach
// the file whole and in place through large blocks written behind, the digests equal one-shot
// digests of the same bytes, a resume at an odd offset keeps earlier bytes and hashes them, a
// restart forgets everything, and a failed write is never vouched for.
#include "export/receive_pipeline.hpp"
#include "scratch.hpp"

#include <hypersdk/hash.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

using namespace hypersdk;
using hypersdk::test::pattern;

namespace {

std::string digest_hex(DigestAlgorithm a, std::span<const std::byte> data) {
    Digest d(a);
    d.update(data);
    return to_hex(d.finish());
}

std::vector<std::byte> file_bytes(const std::string &path) {
    auto f = io::File::open_read(path);
    REQUIRE(f);
    auto size = f.value().size();
    REQUIRE(size);
    std::vector<std::byte> out(size.value());
    if (!out.empty()) REQUIRE(f.value().read_exact(0, out));
    return out;
}

// Appends `data` in pieces of varying size (1 byte to about 100 KiB), as a network delivers it.
Result<void> append_in_pieces(exporter::ReceivePipeline &p, std::span<const std::byte> data) {
    std::size_t step = 1;
    for (std::size_t pos = 0; pos < data.size();) {
        const std::size_t n = std::min(data.size() - pos, step);
        HSDK_TRYV(p.append(data.subspan(pos, n)));
        pos += n;
        step = step * 7 % 100003 + 1;
    }
    return success();
}

exporter::ReceivePipelineOptions small_blocks(io::File *file) {
    exporter::ReceivePipelineOptions o;
    o.file = file;
    o.block_bytes = 64u << 10;  // many blocks for a few MiB of data
    o.blocks = 3;
    return o;
}

}  // namespace

TEST_CASE("receive pipeline: pieces of any size reach the file whole, with both digests") {
    const auto data = pattern((3u << 20) + 12345, 41);
    const std::string path = test::work("receive-whole.bin");
    ::unlink(path.c_str());
    auto file = io::File::create_new(path);
    REQUIRE(file);
    {
        exporter::ReceivePipeline p(small_blocks(&file.value()));
        p.start_at(0);
        REQUIRE(append_in_pieces(p, data));
        auto end = p.settle();
        REQUIRE(end);
        CHECK(end.value() == data.size());
        CHECK(p.sha1_hex() == digest_hex(DigestAlgorithm::sha1, data));
        CHECK(p.sha256_hex() == digest_hex(DigestAlgorithm::sha256, data));
    }
    REQUIRE(file.value().close());
    CHECK(file_bytes(path) == data);
}

TEST_CASE("receive pipeline: a resume at an odd offset keeps the earlier bytes and hashes them") {
    const auto data = pattern((1u << 20) + 999, 42);
    const std::size_t kept = 70001;  // not a multiple of anything the blocks use
    const std::string path = test::write_file("receive-resume.bin", std::vector<std::byte>(data.begin(), data.begin() + kept));
    auto file = io::File::open_read_write(path);
    REQUIRE(file);
    {
        exporter::ReceivePipeline p(small_blocks(&file.value()));
        p.absorb_existing(std::span<const std::byte>(data).first(kept));
        p.start_at(kept);
        REQUIRE(append_in_pieces(p, std::span<const std::byte>(data).subspan(kept)));
        // A checkpoint in the middle vouches only for bytes already written.
        auto through = p.written_through();
        REQUIRE(through);
        CHECK(through.value() <= p.offset());
        CHECK(through.value() >= kept);
        REQUIRE(p.settle());
        CHECK(p.sha1_hex() == digest_hex(DigestAlgorithm::sha1, data));
        CHECK(p.sha256_hex() == digest_hex(DigestAlgorithm::sha256, data));
    }
    REQUIRE(file.value().close());
    CHECK(file_bytes(path) == data);
}

TEST_CASE("receive pipeline: a restart forgets the bytes and the digests") {
    const auto first = pattern(300000, 43);
    const auto second = pattern(500000, 44);
    const std::string path = test::work("receive-restart.bin");
    ::unlink(path.c_str());
    auto file = io::File::create_new(path);
    REQUIRE(file);
    {
        exporter::ReceivePipeline p(small_blocks(&file.value()));
        p.start_at(0);
        REQUIRE(append_in_pieces(p, first));
        REQUIRE(p.restart());
        REQUIRE(file.value().truncate(0));  // the caller's part of a restart
        CHECK(p.offset() == 0);
        REQUIRE(append_in_pieces(p, second));
        REQUIRE(p.settle());
        CHECK(p.sha1_hex() == digest_hex(DigestAlgorithm::sha1, second));
    }
    REQUIRE(file.value().close());
    CHECK(file_bytes(path) == second);
}

TEST_CASE("receive pipeline: without a file the bytes are only hashed; SHA-256 only when asked") {
    const auto data = pattern(200000, 45);
    exporter::ReceivePipelineOptions o = small_blocks(nullptr);
    o.sha256 = false;
    exporter::ReceivePipeline p(o);
    p.start_at(0);
    REQUIRE(append_in_pieces(p, data));
    REQUIRE(p.settle());
    CHECK(p.sha1_hex() == digest_hex(DigestAlgorithm::sha1, data));
    CHECK(p.sha256_hex().empty());
}

TEST_CASE("receive pipeline: a write that fails is reported and nothing after it is vouched for") {
    // /dev/full refuses every write with ENOSPC.
    auto file = io::File::open_read_write("/dev/full");
    REQUIRE(file);
    exporter::ReceivePipeline p(small_blocks(&file.value()));
    p.start_at(0);
    const auto data = pattern(1u << 20, 46);
    auto appended = append_in_pieces(p, data);
    REQUIRE_FALSE(appended);
    CHECK(appended.error().code == Errc::no_space);
    auto through = p.written_through();
    REQUIRE_FALSE(through);
    CHECK(through.error().code == Errc::no_space);
    REQUIRE_FALSE(p.settle());
}
