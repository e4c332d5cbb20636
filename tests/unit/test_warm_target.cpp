// Warm migration targets: a qcow2 with every cluster mapped up front takes writes anywhere, in any
// order, reads back as written (our reader; qemu-img in tests/integration/test_migrate_warm.py),
// passes a metadata check, and is recognised again; zero writes become holes.
#include "export/warm_target.hpp"
#include "scratch.hpp"

#include <hypersdk/check.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

using namespace hypersdk;
using hypersdk::test::pattern;

namespace {
constexpr std::uint64_t warm_MiB = 1024 * 1024;
}

TEST_CASE("a preallocated qcow2 target takes writes in any order and reads back exactly") {
    const std::uint64_t size = 5 * warm_MiB + 12345;  // not a whole number of clusters
    const auto path = test::work("warm-target.qcow2");
    ::unlink(path.c_str());
    auto expected = std::vector<std::byte>(size, std::byte{0});
    const auto data = pattern(size, 3);
    {
        auto t = exporter::WarmTarget::create(path, "qcow2", size);
        REQUIRE(t);
        // Backwards, unaligned, across cluster boundaries, up to the last byte.
        for (std::uint64_t off : std::vector<std::uint64_t>{size - 7000, 3 * warm_MiB + 1, 65536 - 100, 0}) {
            const std::uint64_t n = std::min<std::uint64_t>(7000, size - off);
            REQUIRE(t.value().write(off, std::span(data).subspan(off, n)));
            std::copy(data.begin() + static_cast<std::ptrdiff_t>(off), data.begin() + static_cast<std::ptrdiff_t>(off + n),
                      expected.begin() + static_cast<std::ptrdiff_t>(off));
        }
        // Zeros over data: read back as zeros.
        REQUIRE(t.value().write(3 * warm_MiB + 1, std::vector<std::byte>(100, std::byte{0})));
        std::fill_n(expected.begin() + 3 * warm_MiB + 1, 100, std::byte{0});
        REQUIRE(t.value().close());
    }
    auto report = check_image(path);
    REQUIRE(report);
    CHECK(report.value().clean);
    auto image = open_image(path);
    REQUIRE(image);
    CHECK(image.value()->virtual_size() == (size + 511) / 512 * 512);
    std::vector<std::byte> back(size);
    REQUIRE(image.value()->read(0, back));
    CHECK(back == expected);

    // Opened again by a later step; a capacity that differs is refused.
    CHECK(exporter::WarmTarget::open(path, "qcow2", size));
    auto other = exporter::WarmTarget::open(path, "qcow2", size * 2);
    REQUIRE_FALSE(other);
    CHECK(other.error().code == Errc::conflict);
    // Sparse: only metadata and the written clusters occupy space.
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_blocks) * 512 < 2 * warm_MiB);
}

TEST_CASE("a qcow2 that is not a preallocated target is refused, an existing file is not overwritten") {
    const auto raw = test::write_file("warm-plain.raw", pattern(2 * warm_MiB, 5));
    const auto plain = test::work("warm-plain.qcow2");
    ConvertOptions co;
    co.output_format = "qcow2";
    co.overwrite = true;
    OpenOptions ro;
    ro.format = "raw";
    REQUIRE(convert(raw, ro, plain, co));
    auto opened = exporter::WarmTarget::open(plain, "qcow2", 2 * warm_MiB);
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == Errc::corrupt_image);
    auto created = exporter::WarmTarget::create(plain, "qcow2", 2 * warm_MiB);
    REQUIRE_FALSE(created);
    CHECK(created.error().code == Errc::conflict);
    auto vmdk = exporter::WarmTarget::create(test::work("warm.vmdk"), "vmdk", warm_MiB);
    REQUIRE_FALSE(vmdk);
    CHECK(vmdk.error().code == Errc::unsupported);
}
