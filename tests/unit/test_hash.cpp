#include <hypersdk/hash.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>

using namespace hypersdk;

TEST_CASE("SHA-256 known answers") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("SHA-1 known answer and reuse after finish") {
    Digest d(DigestAlgorithm::sha1);
    d.update(std::string_view("abc"));
    auto a = d.finish();
    CHECK(to_hex(a) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    d.update(std::string_view("abc"));
    CHECK(to_hex(d.finish()) == "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST_CASE("file digest streams large files and honours cancel") {
    const std::string path = std::string(HSDK_TEST_WORK_DIR) + "/hash-input.bin";
    {
        std::ofstream out(path, std::ios::binary);
        std::string block(1 << 20, 'x');
        for (int i = 0; i < 3; ++i) out << block;
        out << "tail";
    }
    Digest d(DigestAlgorithm::sha256);
    std::string block(1 << 20, 'x');
    for (int i = 0; i < 3; ++i) d.update(std::string_view(block));
    d.update(std::string_view("tail"));
    const auto expected = to_hex(d.finish());
    auto got = file_digest_hex(path, DigestAlgorithm::sha256);
    REQUIRE(got);
    CHECK(got.value() == expected);

    CancelToken token;
    token.cancel();
    auto cancelled = file_digest_hex(path, DigestAlgorithm::sha256, token);
    REQUIRE_FALSE(cancelled);
    CHECK(cancelled.error().code == Errc::cancelled);

    auto missing = file_digest_hex(path + ".missing", DigestAlgorithm::sha256);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == Errc::not_found);
    std::remove(path.c_str());
}
