// The push parser reads a streamOptimized VMDK fed in arbitrary chunks, as it comes off a network.
#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include "format/vmdk/stream_parser.hpp"
#include "io/file.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace hypersdk;

namespace {

std::vector<std::byte> read_all(const std::string &path) {
    auto f = io::File::open_read(path).value();
    std::vector<std::byte> out(static_cast<std::size_t>(f.size().value()));
    REQUIRE(f.read_exact(0, out));
    return out;
}

// A disk of `size` bytes with data in some places, converted to streamOptimized by our writer.
// `name` keeps each test case's files apart: ctest runs the cases of one binary in parallel.
std::pair<std::vector<std::byte>, std::vector<std::byte>> make_stream(std::uint64_t size, const std::string &name) {
    std::vector<std::byte> disk(size, std::byte{0});
    std::mt19937 rng(3);
    for (std::uint64_t off = 0; off + 70000 < size; off += 300000)
        for (std::uint64_t i = 0; i < 70000; ++i) disk[off + i] = static_cast<std::byte>(rng() % 7 == 0 ? rng() : 'x');
    const std::string raw = std::string(HSDK_TEST_WORK_DIR) + "/" + name + ".raw";
    const std::string vmdk = std::string(HSDK_TEST_WORK_DIR) + "/" + name + ".vmdk";
    ::unlink(raw.c_str());
    ::unlink(vmdk.c_str());
    {
        auto f = io::File::create_new(raw).value();
        REQUIRE(f.write_all(0, disk));
    }
    ConvertOptions co;
    co.output_format = "vmdk";
    co.format_options = {{"subformat", "streamOptimized"}};
    OpenOptions ro;
    ro.format = "raw";
    REQUIRE(convert(raw, ro, vmdk, co));
    return {disk, read_all(vmdk)};
}

}  // namespace

TEST_CASE("stream parser: any chunking yields the disk") {
    const std::uint64_t size = 3 * 1024 * 1024 + 4096 + 512;  // partial last grain
    auto [disk, stream] = make_stream(size, "stream-chunking");
    for (std::size_t chunk : {std::size_t{1}, std::size_t{511}, std::size_t{4096}, std::size_t{1} << 20}) {
        std::vector<std::byte> got;
        std::uint64_t last_end = 0;
        format::vmdk::StreamParser parser(
            {[&](const format::vmdk::SparseHeader &h) {
                 got.assign(static_cast<std::size_t>(h.capacity * 512), std::byte{0});
                 return success();
             },
             [&](std::uint64_t off, std::span<const std::byte> data) -> Result<void> {
                 CHECK(off >= last_end);
                 last_end = off + data.size();
                 std::memcpy(got.data() + off, data.data(), data.size());
                 return success();
             },
             {}},
            "test stream");
        for (std::size_t pos = 0; pos < stream.size(); pos += chunk)
            REQUIRE(parser.feed(std::span(stream).subspan(pos, std::min(chunk, stream.size() - pos))));
        REQUIRE(parser.finish());
        CHECK(got == disk);
    }
}

TEST_CASE("stream parser: truncated and malformed streams fail clearly") {
    auto [disk, stream] = make_stream(2 * 1024 * 1024, "stream-truncated");
    format::vmdk::StreamParser cut({{}, [](std::uint64_t, std::span<const std::byte>) { return success(); }, {}}, "cut");
    // Cut inside a grain (not at a marker boundary).
    REQUIRE(cut.feed(std::span(stream).first(stream.size() / 2 + 7)));
    auto r = cut.finish();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::corrupt_image);
    CHECK(r.error().message.find("ended at offset") != std::string::npos);

    std::vector<std::byte> not_vmdk(4096, std::byte{'Q'});
    format::vmdk::StreamParser bad({}, "bad");
    auto b = bad.feed(not_vmdk);
    REQUIRE_FALSE(b);
    CHECK(b.error().message.find("KDMV") != std::string::npos);
}
