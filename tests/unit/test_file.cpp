#include "io/atomic_output.hpp"
#include "io/file.hpp"

#include <doctest/doctest.h>

#include <dirent.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "scratch.hpp"

using namespace hypersdk;
using namespace hypersdk::test;
using namespace hypersdk::io;

namespace {
std::span<const std::byte> bytes(const std::string &s) { return std::as_bytes(std::span(s.data(), s.size())); }
}  // namespace

TEST_CASE("reads past the end of a file are errors naming the offset") {
    const auto path = work("short.bin");
    ::unlink(path.c_str());
    {
        auto f = File::create_new(path);
        REQUIRE(f);
        REQUIRE(f.value().write_all(0, bytes("0123456789")));
    }
    auto f = File::open_read(path);
    REQUIRE(f);
    std::vector<std::byte> buf(8);
    CHECK(f.value().read_exact(2, buf));
    CHECK(static_cast<char>(buf[0]) == '2');
    auto r = f.value().read_exact(4, buf);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::corrupt_image);
    CHECK(r.error().message.find("offset 0x4") != std::string::npos);
    auto some = f.value().read_some(6, buf);
    REQUIRE(some);
    CHECK(some.value() == 4);
    CHECK(f.value().size().value() == 10);
    ::unlink(path.c_str());
}

TEST_CASE("open errors map to codes") {
    auto missing = File::open_read(work("does-not-exist"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == Errc::not_found);
    auto dir = File::open_read(HSDK_TEST_WORK_DIR);
    REQUIRE_FALSE(dir);
    CHECK(dir.error().code == Errc::invalid_argument);
    const auto path = work("exists.bin");
    ::unlink(path.c_str());
    REQUIRE(File::create_new(path));
    auto again = File::create_new(path);
    REQUIRE_FALSE(again);
    CHECK(again.error().code == Errc::conflict);
    ::unlink(path.c_str());
}

TEST_CASE("atomic outputs appear only on commit, in order") {
    const auto data = work("out-flat.bin");
    const auto desc = work("out.desc");
    ::unlink(data.c_str());
    ::unlink(desc.c_str());
    {
        AtomicOutputSet set;
        auto a = set.add(data);
        REQUIRE(a);
        auto b = set.add(desc);
        REQUIRE(b);
        REQUIRE(a.value()->write_all(0, bytes("payload")));
        REQUIRE(b.value()->write_all(0, bytes("descriptor")));
        CHECK_FALSE(exists(data));
        CHECK_FALSE(exists(desc));
        CHECK(leftover_temporaries("out") == 2);
        REQUIRE(set.commit());
    }
    CHECK(exists(data));
    CHECK(exists(desc));
    CHECK(leftover_temporaries("out") == 0);
    ::unlink(data.c_str());
    ::unlink(desc.c_str());
}

TEST_CASE("an abandoned output leaves nothing behind and keeps the old file") {
    const auto path = work("keep.bin");
    ::unlink(path.c_str());
    {
        auto f = File::create_new(path);
        REQUIRE(f);
        REQUIRE(f.value().write_all(0, bytes("old")));
    }
    {
        AtomicOutputSet set;
        auto a = set.add(path);
        REQUIRE(a);
        REQUIRE(a.value()->write_all(0, bytes("new but unfinished")));
        // destroyed without commit: a failed job
    }
    CHECK(leftover_temporaries("keep") == 0);
    auto f = File::open_read(path);
    REQUIRE(f);
    CHECK(f.value().size().value() == 3);
    AtomicOutputSet strict;
    auto refused = strict.add(path, /*overwrite=*/false);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == Errc::conflict);
    ::unlink(path.c_str());
}
