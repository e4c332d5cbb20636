// Writing in place (io/in_place.hpp) on a regular file, as -n does: gaps between writes are zeroed
// over old data, the record of writes collapses when it grows large without losing a byte, the
// target is never cut, and a smaller target is refused.
#include "io/atomic_output.hpp"
#include "io/file.hpp"
#include "io/output_target.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;
using namespace hypersdk::io;

namespace {

std::string filled(const std::string &name, std::size_t size, char c) {
    const auto path = work(name);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << std::string(size, c);
    return path;
}

std::string contents(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("in place: gaps are zeroed, data kept, the tail past the image left alone") {
    const auto path = filled("in-place.bin", 200000, '\xff');
    auto target = inspect_output(path);
    REQUIRE(target);
    CHECK(target.value().kind == TargetKind::regular_file);
    auto f = File::open_in_place(target.value(), false);
    REQUIRE(f);
    const std::string a(1000, 'a'), b(3000, 'b');
    REQUIRE(f.value().write_all(5000, std::as_bytes(std::span(a.data(), a.size()))));
    REQUIRE(f.value().write_all(100000, std::as_bytes(std::span(b.data(), b.size()))));
    REQUIRE(f.value().truncate(150000));  // the image's length: never cuts the file
    CHECK(f.value().size().value() == 150000);
    REQUIRE(f.value().finish_in_place());
    REQUIRE(f.value().close());
    const auto got = contents(path);
    REQUIRE(got.size() == 200000);
    CHECK(got.substr(0, 5000) == std::string(5000, '\0'));
    CHECK(got.substr(5000, 1000) == a);
    CHECK(got.substr(6000, 94000) == std::string(94000, '\0'));
    CHECK(got.substr(100000, 3000) == b);
    CHECK(got.substr(103000, 47000) == std::string(47000, '\0'));
    CHECK(got.substr(150000) == std::string(50000, '\xff'));
}

TEST_CASE("in place: a record of many separate writes collapses without losing a byte") {
    constexpr std::size_t writes = 70000;  // more than the record keeps apart
    const auto path = filled("in-place-many.bin", writes * 16, '\xee');
    auto target = inspect_output(path);
    REQUIRE(target);
    auto f = File::open_in_place(target.value(), false);
    REQUIRE(f);
    for (std::size_t i = 0; i < writes; ++i) {
        const char c = static_cast<char>('A' + i % 26);
        REQUIRE(f.value().write_all(i * 16, std::as_bytes(std::span(&c, 1))));
    }
    REQUIRE(f.value().finish_in_place());
    REQUIRE(f.value().close());
    const auto got = contents(path);
    REQUIRE(got.size() == writes * 16);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const char want = i % 16 == 0 ? static_cast<char>('A' + (i / 16) % 26) : '\0';
        if (i + 16 > got.size() && i % 16 != 0) break;  // past the last write: not part of the image
        wrong += got[i] != want;
    }
    CHECK(wrong == 0);
}

TEST_CASE("in place: a target smaller than the image is refused and kept") {
    const auto path = filled("in-place-small.bin", 4096, 'x');
    AtomicOutputSet set;
    OutputOptions o;
    o.skip_create = true;
    auto f = set.add(path, o);
    REQUIRE(f);
    auto r = f.value()->truncate(8192);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::no_space);
    CHECK(r.error().message.find("holds 4096 bytes, fewer than the image's 8192") != std::string::npos);
    set.abandon();
    CHECK(contents(path) == std::string(4096, 'x'));
}

TEST_CASE("skip_create needs an existing target; a folder is no target") {
    AtomicOutputSet set;
    OutputOptions o;
    o.skip_create = true;
    const auto missing = work("in-place-missing.bin");
    ::unlink(missing.c_str());
    auto r = set.add(missing, o);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::not_found);
    auto dir = set.add(std::string(HSDK_TEST_WORK_DIR), OutputOptions{});
    REQUIRE_FALSE(dir);
    CHECK(dir.error().message.find("is a directory") != std::string::npos);
}
