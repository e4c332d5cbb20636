#include <hypersdk/error.hpp>

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace hypersdk;

namespace {
Result<int> parse_positive(int v) {
    if (v <= 0) return fail(Errc::invalid_argument, "not positive");
    return v;
}
Result<int> doubled(int v) {
    HSDK_TRY(auto x, parse_positive(v));
    return x * 2;
}
}  // namespace

TEST_CASE("error codes are pinned") {
    // These numbers are ABI: a change here breaks every C, Python and Node user.
    CHECK(static_cast<int>(Errc::ok) == 0);
    CHECK(static_cast<int>(Errc::invalid_argument) == 1);
    CHECK(static_cast<int>(Errc::not_found) == 2);
    CHECK(static_cast<int>(Errc::unsupported) == 3);
    CHECK(static_cast<int>(Errc::corrupt_image) == 4);
    CHECK(static_cast<int>(Errc::io_error) == 5);
    CHECK(static_cast<int>(Errc::no_space) == 6);
    CHECK(static_cast<int>(Errc::network_error) == 7);
    CHECK(static_cast<int>(Errc::tls_error) == 8);
    CHECK(static_cast<int>(Errc::auth_failed) == 9);
    CHECK(static_cast<int>(Errc::permission_denied) == 10);
    CHECK(static_cast<int>(Errc::timeout) == 11);
    CHECK(static_cast<int>(Errc::cancelled) == 12);
    CHECK(static_cast<int>(Errc::checksum_mismatch) == 13);
    CHECK(static_cast<int>(Errc::remote_error) == 14);
    CHECK(static_cast<int>(Errc::conflict) == 15);
    CHECK(static_cast<int>(Errc::internal) == 16);
    CHECK(static_cast<int>(Errc::no_memory) == 17);
}

TEST_CASE("every code has a distinct name") {
    std::set<std::string_view> names;
    for (int i = 0; i <= 17; ++i) {
        auto n = errc_name(static_cast<Errc>(i));
        CHECK(n != "unknown");
        names.insert(n);
    }
    CHECK(names.size() == 18);
    CHECK(errc_name(static_cast<Errc>(999)) == "unknown");
    CHECK(errc_name(Errc::corrupt_image) == "corrupt_image");
}

TEST_CASE("HSDK_TRY propagates the first failure") {
    auto good = doubled(21);
    REQUIRE(good);
    CHECK(good.value() == 42);
    auto bad = doubled(-1);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == Errc::invalid_argument);
    CHECK(bad.error().message == "not positive");
}

TEST_CASE("value() of a failure throws hypersdk::Exception carrying the error") {
    auto bad = doubled(0);
    try {
        (void)bad.value();
        FAIL("value() did not throw");
    } catch (const Exception &e) {
        CHECK(e.error().code == Errc::invalid_argument);
        CHECK(std::string(e.what()) == "not positive");
    }
}

TEST_CASE("context and corrupt-image wording") {
    Result<void> r = fail_corrupt("L1 table beyond end of file (offset 0x30000)");
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::corrupt_image);
    CHECK(r.error().message == "corrupt image: L1 table beyond end of file (offset 0x30000)");
    auto e = r.error().with_context("disk.qcow2");
    CHECK(e.message == "disk.qcow2: corrupt image: L1 table beyond end of file (offset 0x30000)");
    CHECK(e.code == Errc::corrupt_image);
}
