#include "io/encryption.hpp"

#include "scratch.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

// Everything lives in one named namespace: test files are compiled in unity batches, and these
// using-declarations must not leak into the next file of the batch.
namespace encryption_test {

using namespace hypersdk;
using namespace hypersdk::io;
using Bytes = std::vector<std::byte>;

constexpr std::size_t K64 = envelope_chunk_size;
constexpr std::size_t SEALED = envelope_sealed_chunk_size;
constexpr std::size_t HDR = envelope_header_size;
// Cheap scrypt costs for the tests (the defaults take a good fraction of a second each time).
constexpr ScryptParams enc_test_fast{10, 8, 1};

EncryptionKey enc_test_passphrase(const char *text = "correct horse battery staple") {
    auto k = EncryptionKey::from_passphrase(text);
    REQUIRE(k.has_value());
    return k.value();
}

EncryptionKey enc_test_raw_key(unsigned char seed = 1) {
    std::array<std::byte, 32> raw{};
    for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::byte>(seed * 37 + i);
    auto k = EncryptionKey::from_raw_key(raw);
    REQUIRE(k.has_value());
    return k.value();
}

// Encrypts `plain` in pieces of `piece` bytes (0: one write).
Bytes enc_test_encrypt(const EncryptionKey &key, const Bytes &plain, std::size_t piece = 0,
                       const ScryptParams &params = enc_test_fast) {
    Bytes out;
    auto w = EnvelopeWriter::create(
        key,
        [&out](std::span<const std::byte> b) -> Result<void> {
            out.insert(out.end(), b.begin(), b.end());
            return success();
        },
        params);
    REQUIRE(w.has_value());
    if (piece == 0) piece = std::max<std::size_t>(plain.size(), 1);
    for (std::size_t at = 0; at < plain.size(); at += piece) {
        const auto n = std::min(piece, plain.size() - at);
        REQUIRE(w.value().write(std::span(plain).subspan(at, n)).has_value());
    }
    REQUIRE(w.value().finish().has_value());
    CHECK(w.value().finished());
    CHECK(w.value().plaintext_bytes() == plain.size());
    CHECK(w.value().envelope_bytes() == out.size());
    return out;
}

// A read callback over bytes in memory (which must outlive the reader).
EnvelopeReadAt enc_test_read_at(const Bytes &data) {
    return [&data](std::uint64_t offset, std::span<std::byte> out) -> Result<std::size_t> {
        if (offset >= data.size()) return std::size_t{0};
        const auto n = std::min<std::size_t>(out.size(), data.size() - offset);
        std::memcpy(out.data(), data.data() + offset, n);
        return n;
    };
}

Result<EnvelopeReader> enc_test_open(const EncryptionKey &key, const Bytes &data) {
    return EnvelopeReader::open(key, enc_test_read_at(data), data.size());
}

Result<Bytes> enc_test_decrypt(const EncryptionKey &key, const Bytes &data) {
    HSDK_TRY(auto reader, enc_test_open(key, data));
    Bytes out(reader.plaintext_size());
    HSDK_TRY(const auto n, reader.read_at(0, out));
    if (n != out.size()) return fail(Errc::internal, "short read");
    return out;
}

// Reads plaintext [offset, offset + n) through a fresh view of the reader.
Result<Bytes> enc_test_read(const EnvelopeReader &r, std::uint64_t offset, std::size_t n) {
    Bytes out(n);
    HSDK_TRY(const auto got, r.read_at(offset, out));
    out.resize(got);
    return out;
}

Bytes enc_test_slice(const Bytes &b, std::size_t from, std::size_t n) {
    return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(from + n));
}

std::string enc_test_sha256(const Bytes &b) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    REQUIRE(EVP_Digest(b.data(), b.size(), md, &len, EVP_sha256(), nullptr) == 1);
    std::string hex;
    for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    return hex;
}

std::string enc_test_hex(std::span<const std::byte> b) {
    std::string hex;
    for (auto x : b) hex += fmt::format("{:02x}", static_cast<unsigned>(x));
    return hex;
}

Bytes enc_test_read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE_MESSAGE(f.good(), path);
    std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Bytes out(raw.size());
    std::memcpy(out.data(), raw.data(), raw.size());
    return out;
}

void enc_test_write_file(const std::string &path, const Bytes &b, unsigned mode = 0600) {
    std::remove(path.c_str());
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char *>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

TEST_CASE("encryption: sizes and the magic") {
    CHECK(envelope_encrypted_size(0) == HDR + 16);
    CHECK(envelope_encrypted_size(1) == HDR + 1 + 16);
    CHECK(envelope_encrypted_size(K64) == HDR + K64 + 16);
    CHECK(envelope_encrypted_size(K64 + 1) == HDR + K64 + 1 + 32);
    const auto enc = enc_test_encrypt(enc_test_raw_key(), test::pattern(10, 1));
    CHECK(looks_encrypted(enc));
    CHECK_FALSE(looks_encrypted(std::span(enc).first(7)));
    CHECK_FALSE(looks_encrypted(test::pattern(64, 2)));
    auto info = parse_envelope_header(std::span(enc).first(HDR));
    REQUIRE(info.has_value());
    CHECK(info.value().kdf == EnvelopeKdf::raw_key);
    CHECK(info.value().chunk_size == K64);
    const auto enc2 = enc_test_encrypt(enc_test_passphrase(), test::pattern(10, 1));
    auto info2 = parse_envelope_header(std::span(enc2).first(HDR));
    REQUIRE(info2.has_value());
    CHECK(info2.value().kdf == EnvelopeKdf::scrypt);
    CHECK(info2.value().scrypt == enc_test_fast);
    // Two envelopes of the same plaintext and key differ (random salt and nonce prefix).
    CHECK(enc != enc_test_encrypt(enc_test_raw_key(), test::pattern(10, 1)));
}

TEST_CASE("encryption: round trips at the chunk boundaries") {
    const auto key = enc_test_passphrase();
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, K64 - 1, K64, K64 + 1, 2 * K64, 2 * K64 + 1, std::size_t{200000}}) {
        const auto plain = test::pattern(n, static_cast<unsigned>(n));
        for (const std::size_t piece : {std::size_t{0}, std::size_t{1000}, K64, K64 + 7}) {
            CAPTURE(n);
            CAPTURE(piece);
            const auto enc = enc_test_encrypt(key, plain, piece);
            CHECK(enc.size() == envelope_encrypted_size(n));
            auto r = enc_test_open(key, enc);
            REQUIRE_MESSAGE(r.has_value(), r.error().message);
            CHECK(r.value().plaintext_size() == n);
            CHECK(r.value().chunk_count() == std::max<std::size_t>(1, (n + K64 - 1) / K64));
            CHECK(r.value().verify_all().has_value());
            auto all = enc_test_read(r.value(), 0, n + 10);
            REQUIRE(all.has_value());
            CHECK(all.value() == plain);
            // Chunk by chunk, as decrypt_file reads.
            Bytes joined;
            Bytes chunk(K64);
            for (std::uint64_t i = 0; i < r.value().chunk_count(); ++i) {
                auto got = r.value().read_chunk(i, chunk);
                REQUIRE(got.has_value());
                joined.insert(joined.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(got.value()));
            }
            CHECK(joined == plain);
        }
    }
}

TEST_CASE("encryption: random access at arbitrary offsets, also from several threads") {
    const auto key = enc_test_raw_key();
    const auto plain = test::pattern(5 * K64 + 123, 7);
    const auto enc = enc_test_encrypt(key, plain, 4097);
    auto r = enc_test_open(key, enc);
    REQUIRE(r.has_value());
    const auto &reader = r.value();
    std::mt19937_64 rng(42);
    for (int i = 0; i < 300; ++i) {
        const std::uint64_t off = rng() % (plain.size() + 50);
        const std::size_t len = static_cast<std::size_t>(rng() % (3 * K64));
        auto got = enc_test_read(reader, off, len);
        REQUIRE(got.has_value());
        const std::size_t expect = off >= plain.size() ? 0 : std::min<std::size_t>(len, plain.size() - off);
        REQUIRE(got.value().size() == expect);
        if (expect > 0) CHECK(got.value() == enc_test_slice(plain, off, expect));
    }
    // Small sequential reads (served from the chunk cache) and reads at the edges.
    Bytes seq;
    for (std::uint64_t off = 0; off < plain.size(); off += 4096) {
        auto got = enc_test_read(reader, off, 4096);
        REQUIRE(got.has_value());
        seq.insert(seq.end(), got.value().begin(), got.value().end());
    }
    CHECK(seq == plain);
    CHECK(enc_test_read(reader, plain.size(), 10).value().empty());
    CHECK(enc_test_read(reader, plain.size() - 1, 10).value() == enc_test_slice(plain, plain.size() - 1, 1));
    CHECK(enc_test_read(reader, K64 - 1, 2).value() == enc_test_slice(plain, K64 - 1, 2));

    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            std::mt19937_64 trng(t);
            for (int i = 0; i < 100; ++i) {
                const std::uint64_t off = trng() % plain.size();
                const std::size_t len = 1 + static_cast<std::size_t>(trng() % 9000);
                Bytes out(len);
                auto got = reader.read_at(off, out);
                const std::size_t expect = std::min<std::size_t>(len, plain.size() - off);
                if (!got || got.value() != expect ||
                    std::memcmp(out.data(), plain.data() + off, expect) != 0)
                    ++bad;
            }
        });
    for (auto &t : threads) t.join();
    CHECK(bad.load() == 0);
}

TEST_CASE("encryption: a flipped ciphertext byte fails only its chunk, and releases none of it") {
    const auto key = enc_test_raw_key();
    const auto plain = test::pattern(4 * K64 - 100, 3);  // chunks 0..3, the last one short
    auto enc = enc_test_encrypt(key, plain);
    for (const std::size_t where : {std::size_t{5}, SEALED - 1 /* a tag byte */}) {
        CAPTURE(where);
        auto bad = enc;
        bad[HDR + 2 * SEALED + where] ^= std::byte{0x40};
        auto r = enc_test_open(key, bad);
        REQUIRE(r.has_value());
        CHECK(enc_test_read(r.value(), 0, 2 * K64).value() == enc_test_slice(plain, 0, 2 * K64));
        CHECK(enc_test_read(r.value(), 3 * K64, K64).value() == enc_test_slice(plain, 3 * K64, plain.size() - 3 * K64));
        Bytes out(100, std::byte{0xAA});
        auto got = r.value().read_at(2 * K64 + 10, out);
        REQUIRE_FALSE(got.has_value());
        CHECK(got.error().code == Errc::checksum_mismatch);
        CHECK(got.error().message.find("chunk 2 failed authentication (damaged or reordered)") != std::string::npos);
        CHECK(std::all_of(out.begin(), out.end(), [](std::byte b) { return b == std::byte{0xAA}; }));
        Bytes chunk(K64, std::byte{0xAA});
        CHECK_FALSE(r.value().read_chunk(2, chunk).has_value());
        CHECK(std::all_of(chunk.begin(), chunk.end(), [](std::byte b) { return b == std::byte{0xAA}; }));
        CHECK_FALSE(r.value().verify_all().has_value());
    }
    // A flip in chunk 0 is found at open.
    auto bad0 = enc;
    bad0[HDR + 100] ^= std::byte{1};
    auto r0 = enc_test_open(key, bad0);
    REQUIRE_FALSE(r0.has_value());
    CHECK(r0.error().code == Errc::auth_failed);
}

TEST_CASE("encryption: swapped chunks are detected") {
    const auto key = enc_test_raw_key();
    const auto plain = test::pattern(3 * K64 + 10, 4);
    const auto enc = enc_test_encrypt(key, plain);
    auto swapped = enc;
    std::swap_ranges(swapped.begin() + HDR + SEALED, swapped.begin() + HDR + 2 * SEALED, swapped.begin() + HDR + 2 * SEALED);
    auto r = enc_test_open(key, swapped);
    REQUIRE(r.has_value());
    auto a = enc_test_read(r.value(), K64, 10);
    auto b = enc_test_read(r.value(), 2 * K64, 10);
    REQUIRE_FALSE(a.has_value());
    REQUIRE_FALSE(b.has_value());
    CHECK(a.error().message.find("chunk 1 failed authentication") != std::string::npos);
    CHECK(b.error().message.find("chunk 2 failed authentication") != std::string::npos);
    CHECK(enc_test_read(r.value(), 3 * K64, 10).has_value());  // the last chunk is where it was

    // Swapping chunk 0 with 1 makes chunk 0 fail at open.
    auto swapped0 = enc;
    std::swap_ranges(swapped0.begin() + HDR, swapped0.begin() + HDR + SEALED, swapped0.begin() + HDR + SEALED);
    CHECK_FALSE(enc_test_open(key, swapped0).has_value());
}

TEST_CASE("encryption: truncation is detected") {
    const auto key = enc_test_raw_key();
    SUBCASE("the last (short) chunk dropped at a chunk boundary") {
        const auto plain = test::pattern(3 * K64 + 500, 5);
        const auto enc = enc_test_encrypt(key, plain);
        const Bytes cut(enc.begin(), enc.begin() + HDR + 3 * SEALED);
        auto r = enc_test_open(key, cut);
        REQUIRE(r.has_value());  // chunk 0 is fine
        CHECK(r.value().plaintext_size() == 3 * K64);
        CHECK(enc_test_read(r.value(), 0, K64).has_value());
        auto last = enc_test_read(r.value(), 2 * K64, 10);
        REQUIRE_FALSE(last.has_value());
        CHECK(last.error().code == Errc::corrupt_image);
        CHECK(last.error().message.find("encrypted file is truncated") != std::string::npos);
    }
    SUBCASE("the last (full) chunk dropped, leaving only chunk 0") {
        const auto enc = enc_test_encrypt(key, test::pattern(2 * K64, 6));
        const Bytes cut(enc.begin(), enc.begin() + HDR + SEALED);
        auto r = enc_test_open(key, cut);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message.find("encrypted file is truncated") != std::string::npos);
    }
    SUBCASE("cut inside a chunk, inside a tag, inside the header, or to nothing") {
        const auto enc = enc_test_encrypt(key, test::pattern(2 * K64 + 1000, 7));
        for (const std::size_t len : {HDR + SEALED + 5000, HDR + SEALED + 3, HDR + 2 * SEALED + 10, HDR + 15, HDR, std::size_t{20},
                                      std::size_t{8}, std::size_t{3}, std::size_t{0}}) {
            CAPTURE(len);
            const Bytes cut(enc.begin(), enc.begin() + static_cast<std::ptrdiff_t>(len));
            CHECK_FALSE(enc_test_decrypt(key, cut).has_value());
        }
        const Bytes header_only(enc.begin(), enc.begin() + 20);
        CHECK(enc_test_open(key, header_only).error().message.find("truncated") != std::string::npos);
        const Bytes three(enc.begin(), enc.begin() + 3);
        CHECK(enc_test_open(key, three).error().message == "not a hypersdk encrypted file");
    }
    SUBCASE("a writer that never finished") {
        Bytes out;
        auto w = EnvelopeWriter::create(key, [&out](std::span<const std::byte> b) -> Result<void> {
            out.insert(out.end(), b.begin(), b.end());
            return success();
        });
        REQUIRE(w.has_value());
        const auto plain = test::pattern(3 * K64 + 10, 8);
        REQUIRE(w.value().write(plain).has_value());
        CHECK(out.size() == HDR + 3 * SEALED);  // three chunks sealed, the rest waits for finish()
        auto r = enc_test_decrypt(key, out);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().message.find("encrypted file is truncated") != std::string::npos);
    }
}

TEST_CASE("encryption: data after the last chunk is detected") {
    const auto key = enc_test_raw_key();
    const auto enc = enc_test_encrypt(key, test::pattern(2 * K64, 9));  // chunk 1 is full and last
    SUBCASE("a whole chunk appended") {
        auto longer = enc;
        longer.insert(longer.end(), enc.begin() + HDR, enc.begin() + HDR + SEALED);  // a copy of chunk 0
        auto r = enc_test_open(key, longer);
        REQUIRE(r.has_value());
        auto got = enc_test_read(r.value(), K64, 10);
        REQUIRE_FALSE(got.has_value());
        CHECK(got.error().code == Errc::corrupt_image);
        CHECK(got.error().message.find("encrypted file has data after its last chunk") != std::string::npos);
    }
    SUBCASE("a chunk from another envelope of the same key appended") {
        const auto other = enc_test_encrypt(key, test::pattern(2 * K64, 10));
        auto longer = enc;
        longer.insert(longer.end(), other.begin() + HDR + SEALED, other.end());
        CHECK_FALSE(enc_test_decrypt(key, longer).has_value());
    }
    SUBCASE("a few bytes appended") {
        for (const std::size_t extra : {std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{4000}}) {
            CAPTURE(extra);
            auto longer = enc;
            longer.resize(longer.size() + extra, std::byte{0});
            CHECK_FALSE(enc_test_decrypt(key, longer).has_value());
        }
        const auto small = enc_test_encrypt(key, test::pattern(1000, 11));
        auto longer = small;
        longer.push_back(std::byte{0});
        CHECK_FALSE(enc_test_decrypt(key, longer).has_value());
    }
}

TEST_CASE("encryption: a change to any header byte is detected") {
    const auto pass = enc_test_passphrase();
    const auto raw = enc_test_raw_key();
    const auto plain = test::pattern(K64 + 10, 12);
    for (const bool use_pass : {true, false}) {
        const auto &key = use_pass ? pass : raw;
        const auto enc = enc_test_encrypt(key, plain);
        REQUIRE(enc_test_decrypt(key, enc).has_value());
        for (std::size_t at = 0; at < HDR; ++at) {
            for (const std::byte flip : {std::byte{0x01}, std::byte{0x80}}) {
                CAPTURE(use_pass);
                CAPTURE(at);
                auto bad = enc;
                bad[at] ^= flip;
                auto r = enc_test_decrypt(key, bad);
                REQUIRE_FALSE(r.has_value());
                const auto code = r.error().code;
                const auto &msg = r.error().message;
                if (at < 8) {
                    CHECK(code == Errc::invalid_argument);
                    CHECK(msg == "not a hypersdk encrypted file");
                } else if (at == 8 || at == 9 || (at >= 20 && at < 24)) {  // version, KDF (unknown), chunk size
                    if (at == 9 && flip == std::byte{0x01}) {
                        CHECK(code == Errc::corrupt_image);  // the other KDF with fields that do not fit it
                    } else {
                        CHECK(code == Errc::unsupported);
                    }
                } else if (at == 11 || at == 63) {
                    CHECK(code == Errc::corrupt_image);
                    CHECK(msg.find("reserved") != std::string::npos);
                } else if (at >= 24) {  // salt and nonce prefix
                    CHECK(code == Errc::auth_failed);
                    CHECK(msg == "wrong passphrase or key, or the header was changed");
                } else if (!use_pass) {  // scrypt costs in a key-file envelope must be zero
                    CHECK(code == Errc::corrupt_image);
                } else {  // scrypt costs: either out of the limits or a different key
                    CHECK((code == Errc::unsupported || code == Errc::auth_failed || code == Errc::corrupt_image));
                }
            }
        }
    }
}

TEST_CASE("encryption: hostile scrypt costs are refused before any work") {
    const auto key = enc_test_passphrase();
    auto enc = enc_test_encrypt(key, test::pattern(10, 13));
    auto log2n = enc;
    log2n[10] = std::byte{23};
    auto r = enc_test_open(key, log2n);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::unsupported);
    CHECK(r.error().message.find("log2(N) 23") != std::string::npos);
    auto big_r = enc;
    big_r[12] = std::byte{0x7f};  // r = 0x7f000008
    CHECK(enc_test_open(key, big_r).error().code == Errc::unsupported);
    auto mem = enc;
    mem[10] = std::byte{22};  // 2^22 * r 8: 4 GiB of memory
    CHECK(enc_test_open(key, mem).error().message.find("1 GiB") != std::string::npos);
    CHECK_FALSE(check_scrypt_params({23, 1, 1}).has_value());
    CHECK_FALSE(check_scrypt_params({21, 8, 1}).has_value());  // 2 GiB: over the memory cap
    CHECK(check_scrypt_params({21, 8, 1}).error().code == Errc::invalid_argument);
    CHECK(check_scrypt_params({20, 8, 1}).has_value());  // 1 GiB: at the cap
    CHECK_FALSE(check_scrypt_params({20, 8, 5}).has_value());  // r * p * N over 2^25
    CHECK(check_scrypt_params({}).has_value());
    auto w = EnvelopeWriter::create(key, [](std::span<const std::byte>) -> Result<void> { return success(); },
                                    ScryptParams{10, 0, 1});
    CHECK_FALSE(w.has_value());
}

TEST_CASE("encryption: wrong passphrase, wrong key file, wrong kind of key") {
    const auto plain = test::pattern(1000, 14);
    const auto by_pass = enc_test_encrypt(enc_test_passphrase("right"), plain);
    auto r = enc_test_open(enc_test_passphrase("wrong"), by_pass);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::auth_failed);
    CHECK(r.error().message == "wrong passphrase or key, or the header was changed");
    CHECK(enc_test_decrypt(enc_test_passphrase("right"), by_pass).value() == plain);

    const auto by_key = enc_test_encrypt(enc_test_raw_key(1), plain);
    r = enc_test_open(enc_test_raw_key(2), by_key);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::auth_failed);
    CHECK(r.error().message == "wrong passphrase or key, or the header was changed");

    r = enc_test_open(enc_test_passphrase("right"), by_key);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::auth_failed);
    CHECK(r.error().message.find("key file, not a passphrase") != std::string::npos);
    r = enc_test_open(enc_test_raw_key(1), by_pass);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("passphrase, not a key file") != std::string::npos);
}

TEST_CASE("encryption: the default scrypt costs") {
    const auto key = enc_test_passphrase("default costs");
    const auto plain = test::pattern(K64 + 3, 15);
    const auto enc = enc_test_encrypt(key, plain, 0, ScryptParams{});
    auto info = parse_envelope_header(enc);
    REQUIRE(info.has_value());
    CHECK(info.value().scrypt.log2_n == 17);
    CHECK(info.value().scrypt.r == 8);
    CHECK(info.value().scrypt.p == 1);
    auto back = enc_test_decrypt(key, enc);
    REQUIRE_MESSAGE(back.has_value(), back.error().message);
    CHECK(back.value() == plain);
}

TEST_CASE("encryption: writer misuse and sink failures") {
    const auto key = enc_test_raw_key();
    Bytes out;
    auto w = EnvelopeWriter::create(key, [&out](std::span<const std::byte> b) -> Result<void> {
        out.insert(out.end(), b.begin(), b.end());
        return success();
    });
    REQUIRE(w.has_value());
    CHECK(out.size() == HDR);  // the header goes out at once
    REQUIRE(w.value().finish().has_value());
    CHECK_FALSE(w.value().write(test::pattern(1, 1)).has_value());
    CHECK_FALSE(w.value().finish().has_value());
    CHECK(enc_test_decrypt(key, out).value().empty());

    int calls = 0;
    auto failing = EnvelopeWriter::create(key, [&calls](std::span<const std::byte>) -> Result<void> {
        if (++calls == 2) return fail(Errc::no_space, "disk full");
        return success();
    });
    REQUIRE(failing.has_value());
    auto wr = failing.value().write(test::pattern(2 * K64, 1));
    REQUIRE_FALSE(wr.has_value());
    CHECK(wr.error().code == Errc::no_space);
    CHECK_FALSE(failing.value().write(test::pattern(1, 1)).has_value());
    CHECK_FALSE(failing.value().finish().has_value());

    CHECK_FALSE(EnvelopeWriter::create(key, nullptr).has_value());
    CHECK_FALSE(EncryptionKey::from_passphrase("").has_value());
    CHECK_FALSE(EncryptionKey::from_raw_key(test::pattern(31, 1)).has_value());
    CHECK(enc_test_passphrase().describe() == "passphrase");
    CHECK(enc_test_raw_key().describe() == "key file");
}

TEST_CASE("encryption: key files, passphrase files and variables") {
    const auto raw = test::pattern(32, 16);
    const auto key_path = test::work("enc-key-file.bin");
    enc_test_write_file(key_path, raw, 0644);
    auto k = key_from_key_file(key_path);
    REQUIRE_FALSE(k.has_value());
    CHECK(k.error().code == Errc::permission_denied);
    CHECK(k.error().message.find("chmod 600") != std::string::npos);
    REQUIRE(::chmod(key_path.c_str(), 0600) == 0);
    k = key_from_key_file(key_path);
    REQUIRE(k.has_value());
    CHECK(k.value().kind() == EncryptionKey::Kind::raw_key);
    const auto plain = test::pattern(5000, 17);
    const auto by_file = enc_test_encrypt(k.value(), plain);
    CHECK(enc_test_decrypt(EncryptionKey::from_raw_key(raw).value(), by_file).value() == plain);

    enc_test_write_file(key_path, test::pattern(33, 16), 0600);
    k = key_from_key_file(key_path);
    REQUIRE_FALSE(k.has_value());
    CHECK(k.error().message.find("exactly 32 bytes (it holds 33)") != std::string::npos);
    CHECK(key_from_key_file(test::work("enc-no-such-key")).error().code == Errc::not_found);

    const auto pass_path = test::work("enc-passphrase.txt");
    const std::string text = "s3cret phrase";
    const auto as_bytes = [](const std::string &s) {
        Bytes b(s.size());
        std::memcpy(b.data(), s.data(), s.size());
        return b;
    };
    const auto reference = enc_test_encrypt(enc_test_passphrase(text.c_str()), plain);
    for (const std::string &content : {text, text + "\n", text + "\r\n"}) {
        enc_test_write_file(pass_path, as_bytes(content), 0644);
        auto p = key_from_passphrase_file(pass_path);
        REQUIRE(p.has_value());
        CHECK(enc_test_decrypt(p.value(), reference).value() == plain);
    }
    enc_test_write_file(pass_path, as_bytes(text + "\n\n"), 0600);  // only one line ending is removed
    CHECK_FALSE(enc_test_open(key_from_passphrase_file(pass_path).value(), reference).has_value());
    enc_test_write_file(pass_path, as_bytes("\n"), 0600);
    CHECK(key_from_passphrase_file(pass_path).error().message.find("is empty") != std::string::npos);

    ::setenv("HSDK_ENC_TEST_PASSPHRASE", text.c_str(), 1);
    auto e = key_from_passphrase_env("HSDK_ENC_TEST_PASSPHRASE");
    REQUIRE(e.has_value());
    CHECK(enc_test_decrypt(e.value(), reference).value() == plain);
    ::setenv("HSDK_ENC_TEST_PASSPHRASE", "", 1);
    CHECK(key_from_passphrase_env("HSDK_ENC_TEST_PASSPHRASE").error().code == Errc::invalid_argument);
    ::unsetenv("HSDK_ENC_TEST_PASSPHRASE");
    CHECK(key_from_passphrase_env("HSDK_ENC_TEST_PASSPHRASE").error().code == Errc::not_found);
}

TEST_CASE("encryption: encrypt_file and decrypt_file; no output on failure") {
    const auto key = enc_test_passphrase();
    const auto plain = test::pattern(3 * K64 + 77, 18);
    const auto in = test::write_file("enc-file-plain.bin", plain);
    const auto enc = test::work("enc-file.enc");
    const auto out = test::work("enc-file-out.bin");
    std::remove(out.c_str());
    REQUIRE(encrypt_file(key, in, enc, enc_test_fast).has_value());
    CHECK(looks_encrypted(enc_test_read_file(enc)));
    auto d = decrypt_file(key, enc, out);
    REQUIRE_MESSAGE(d.has_value(), d.error().message);
    CHECK(enc_test_read_file(out) == plain);
    struct stat st {};
    REQUIRE(::stat(out.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    auto conflict = decrypt_file(key, enc, out, false);
    REQUIRE_FALSE(conflict.has_value());
    CHECK(conflict.error().code == Errc::conflict);
    CHECK(encrypt_file(key, in, enc, enc_test_fast, false).error().code == Errc::conflict);
    std::remove(out.c_str());

    // Damage in the last chunk: chunks 0..2 verify, but nothing may be left behind.
    auto damaged = enc_test_read_file(enc);
    damaged[damaged.size() - 20] ^= std::byte{4};
    const auto bad = test::write_file("enc-file-bad.enc", damaged);
    auto r = decrypt_file(key, bad, out);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("chunk 3 failed authentication") != std::string::npos);
    CHECK(r.error().message.find("enc-file-bad.enc") != std::string::npos);
    CHECK_FALSE(test::exists(out));
    CHECK(test::leftover_temporaries("enc-file-out.bin") == 0);

    // Wrong passphrase: no output either; and an existing output is left as it was.
    test::write_file("enc-file-out.bin", test::pattern(10, 1));
    r = decrypt_file(enc_test_passphrase("nope"), enc, out);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::auth_failed);
    CHECK(enc_test_read_file(out) == test::pattern(10, 1));
    CHECK(test::leftover_temporaries("enc-file-out.bin") == 0);
    std::remove(out.c_str());

    // Truncated at a chunk boundary.
    auto cut = enc_test_read_file(enc);
    cut.resize(HDR + 3 * SEALED);
    const auto cut_path = test::write_file("enc-file-cut.enc", cut);
    r = decrypt_file(key, cut_path, out);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("truncated") != std::string::npos);
    CHECK_FALSE(test::exists(out));
    CHECK(test::leftover_temporaries("enc-file-out.bin") == 0);

    CHECK(decrypt_file(key, in, out).error().message.find("not a hypersdk encrypted file") != std::string::npos);
    CHECK_FALSE(test::exists(out));
    CHECK(decrypt_file(key, test::work("enc-no-such-input"), out).error().code == Errc::not_found);
}

// The vectors of tests/data/encryption (README.md there). HSDK_WRITE_ENCRYPTION_VECTORS=DIR writes
// them afresh into DIR instead of checking them.
struct EncTestVector {
    const char *file;
    bool passphrase;
    std::size_t size;
};
constexpr std::array<EncTestVector, 6> enc_test_vectors{{
    {"empty.enc", true, 0},
    {"one-byte.enc", true, 1},
    {"one-chunk.enc", true, K64},
    {"one-chunk-plus-one.enc", true, K64 + 1},
    {"200k.enc", true, 200 * 1024},
    {"key-file-64k-plus-one.enc", false, K64 + 1},
}};
constexpr const char *enc_test_vector_passphrase = "hypersdk test vector passphrase";

Bytes enc_test_vector_plaintext(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>(i % 251);
    return b;
}

EncryptionKey enc_test_vector_key(bool passphrase) {
    if (passphrase) return enc_test_passphrase(enc_test_vector_passphrase);
    std::array<std::byte, 32> raw{};
    for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::byte>(i);
    return EncryptionKey::from_raw_key(raw).value();
}

Bytes enc_test_vector_encrypt(std::size_t index) {
    const auto &v = enc_test_vectors[index];
    std::array<std::byte, envelope_salt_size> salt{};
    std::array<std::byte, envelope_nonce_prefix_size> prefix{};
    for (std::size_t i = 0; i < salt.size(); ++i) salt[i] = static_cast<std::byte>(index * 32 + i);
    for (std::size_t i = 0; i < prefix.size(); ++i) prefix[i] = static_cast<std::byte>(0xf0 + i);
    Bytes out;
    auto w = EnvelopeWriter::create_deterministic_for_tests(
        enc_test_vector_key(v.passphrase),
        [&out](std::span<const std::byte> b) -> Result<void> {
            out.insert(out.end(), b.begin(), b.end());
            return success();
        },
        enc_test_fast, salt, prefix);
    REQUIRE(w.has_value());
    REQUIRE(w.value().write(enc_test_vector_plaintext(v.size)).has_value());
    REQUIRE(w.value().finish().has_value());
    return out;
}

TEST_CASE("encryption: the test vectors") {
    if (const char *dir = std::getenv("HSDK_WRITE_ENCRYPTION_VECTORS"); dir != nullptr && *dir != '\0') {
        nlohmann::json list = nlohmann::json::array();
        for (std::size_t i = 0; i < enc_test_vectors.size(); ++i) {
            const auto &v = enc_test_vectors[i];
            const auto enc = enc_test_vector_encrypt(i);
            enc_test_write_file(std::string(dir) + "/" + v.file, enc, 0644);
            list.push_back({{"file", v.file},
                            {"key", v.passphrase ? "passphrase" : "key_file"},
                            {"plaintext_size", v.size},
                            {"plaintext_sha256", enc_test_sha256(enc_test_vector_plaintext(v.size))},
                            {"encrypted_size", enc.size()},
                            {"encrypted_sha256", enc_test_sha256(enc)},
                            {"salt", enc_test_hex(std::span(enc).subspan(24, 32))},
                            {"nonce_prefix", enc_test_hex(std::span(enc).subspan(56, 7))}});
        }
        std::array<std::byte, 32> raw{};
        for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::byte>(i);
        const nlohmann::json doc = {{"passphrase", enc_test_vector_passphrase},
                                    {"key_file_hex", enc_test_hex(raw)},
                                    {"scrypt", {{"log2_n", 10}, {"r", 8}, {"p", 1}}},
                                    {"plaintext_rule", "byte i of the plaintext is i mod 251"},
                                    {"vectors", list}};
        std::ofstream(std::string(dir) + "/vectors.json") << doc.dump(2) << "\n";
        return;
    }
    const std::string dir = std::string(HSDK_TEST_DATA_DIR) + "/encryption";
    std::ifstream manifest(dir + "/vectors.json");
    REQUIRE(manifest.good());
    const auto doc = nlohmann::json::parse(manifest);
    REQUIRE(doc.at("vectors").size() == enc_test_vectors.size());
    for (std::size_t i = 0; i < enc_test_vectors.size(); ++i) {
        const auto &v = enc_test_vectors[i];
        const auto &entry = doc.at("vectors").at(i);
        CAPTURE(v.file);
        REQUIRE(entry.at("file").get<std::string>() == v.file);
        const auto enc = enc_test_read_file(dir + "/" + v.file);
        CHECK(enc.size() == entry.at("encrypted_size").get<std::size_t>());
        CHECK(enc_test_sha256(enc) == entry.at("encrypted_sha256").get<std::string>());
        // The reader decrypts the stored file to the rule's plaintext ...
        const auto plain = enc_test_vector_plaintext(v.size);
        CHECK(enc_test_sha256(plain) == entry.at("plaintext_sha256").get<std::string>());
        auto back = enc_test_decrypt(enc_test_vector_key(v.passphrase), enc);
        REQUIRE_MESSAGE(back.has_value(), back.error().message);
        CHECK(back.value() == plain);
        // ... and the writer still produces it byte for byte (the format has not drifted).
        CHECK(enc_test_vector_encrypt(i) == enc);
    }
}

}  // namespace encryption_test
