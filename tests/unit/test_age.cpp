#include "io/age.hpp"

#include "scratch.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <poll.h>
#include <pty.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

// Everything lives in one named namespace: test files are compiled in unity batches, and these
// using-declarations must not leak into the next file of the batch.
namespace age_test {

using namespace hypersdk;
using namespace hypersdk::io;
using Bytes = std::vector<std::byte>;

constexpr std::size_t K64 = age_chunk_size;
constexpr std::size_t SEALED = age_sealed_chunk_size;
// Cheap scrypt for the tests (the default, 18, takes most of a second each time).
constexpr int age_t_fast_work = 10;
constexpr const char *age_t_pass = "correct horse battery staple";

// The example key pair of the age specification (age-encryption.org/v1, "The X25519 recipient type").
constexpr const char *age_t_spec_identity = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
constexpr const char *age_t_spec_recipient = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

std::string age_t_path(const std::string &name) {
    std::filesystem::create_directories(HSDK_TEST_WORK_DIR);
    return hypersdk::test::work(name);
}

EncryptionKey age_t_passphrase(const char *text = age_t_pass) {
    auto k = EncryptionKey::from_passphrase(text);
    REQUIRE(k.has_value());
    return k.value();
}

AgeIdentity age_t_identity() {
    auto id = AgeIdentity::generate();
    REQUIRE(id.has_value());
    return id.value();
}

EnvelopeSink age_t_sink(Bytes &out) {
    return [&out](std::span<const std::byte> b) -> Result<void> {
        out.insert(out.end(), b.begin(), b.end());
        return success();
    };
}

// Encrypts `plain` in pieces of `piece` bytes (0: one write).
Bytes age_t_encrypt(const AgeEncryptKeys &keys, const Bytes &plain, std::size_t piece = 0) {
    Bytes out;
    auto w = AgeWriter::create(keys, age_t_sink(out));
    REQUIRE_MESSAGE(w.has_value(), (w ? "" : w.error().message));
    std::span<const std::byte> rest(plain);
    while (!rest.empty()) {
        const std::size_t n = piece == 0 ? rest.size() : std::min(piece, rest.size());
        REQUIRE(w.value().write(rest.first(n)).has_value());
        rest = rest.subspan(n);
    }
    REQUIRE(w.value().finish().has_value());
    CHECK(w.value().finished());
    CHECK(w.value().plaintext_bytes() == plain.size());
    CHECK(w.value().encrypted_bytes() == out.size());
    return out;
}

AgeEncryptKeys age_t_to(const std::vector<AgeIdentity> &ids) {
    AgeEncryptKeys keys;
    for (const auto &id : ids) keys.recipients.push_back(id.recipient());
    return keys;
}

AgeEncryptKeys age_t_to_passphrase(const char *text = age_t_pass) {
    AgeEncryptKeys keys;
    keys.passphrase = age_t_passphrase(text);
    keys.scrypt_log2_work = age_t_fast_work;
    return keys;
}

AgeDecryptKeys age_t_with(std::vector<AgeIdentity> ids) {
    AgeDecryptKeys keys;
    keys.identities = std::move(ids);
    return keys;
}

AgeDecryptKeys age_t_with_passphrase(const char *text = age_t_pass) {
    AgeDecryptKeys keys;
    keys.passphrase = age_t_passphrase(text);
    return keys;
}

// A read callback over a copy of `file`, counting its calls.
EnvelopeReadAt age_t_read_at(const Bytes &file, std::shared_ptr<std::atomic<int>> calls = nullptr) {
    auto data = std::make_shared<const Bytes>(file);
    return [data, calls](std::uint64_t offset, std::span<std::byte> out) -> Result<std::size_t> {
        if (calls) ++*calls;
        if (offset >= data->size()) return std::size_t{0};
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), data->size() - offset));
        std::memcpy(out.data(), data->data() + offset, n);
        return n;
    };
}

Result<AgeReader> age_t_open(const AgeDecryptKeys &keys, const Bytes &file) {
    return AgeReader::open(keys, age_t_read_at(file), file.size());
}

Bytes age_t_read_all(const AgeReader &r) {
    Bytes out(static_cast<std::size_t>(r.plaintext_size()));
    auto n = r.read_at(0, out);
    REQUIRE_MESSAGE(n.has_value(), (n ? "" : n.error().message));
    CHECK(n.value() == out.size());
    return out;
}

Bytes age_t_decrypt(const AgeDecryptKeys &keys, const Bytes &file) {
    auto r = age_t_open(keys, file);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    CHECK(r.value().verify_all().has_value());
    return age_t_read_all(r.value());
}

Bytes age_t_load(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    const std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Bytes out(s.size());
    if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
    return out;
}

std::string age_t_text(const Bytes &b) { return std::string(reinterpret_cast<const char *>(b.data()), b.size()); }
Bytes age_t_bytes(std::string_view s) {
    Bytes out(s.size());
    if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
    return out;
}

// Offset of the payload nonce: just past the "--- MAC" line.
std::size_t age_t_header_end(const Bytes &file) {
    const auto text = age_t_text(file);
    const auto mac = text.find("\n---");
    REQUIRE(mac != std::string::npos);
    return text.find('\n', mac + 1) + 1;
}

// Padded base64 in 64-column lines between the armor's BEGIN and END lines (our own encoder, to
// armor files without the age tool).
std::string age_t_armor(const Bytes &file, const char *eol = "\n") {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string b64;
    for (std::size_t i = 0; i < file.size(); i += 3) {
        std::uint32_t v = std::to_integer<std::uint32_t>(file[i]) << 16;
        if (i + 1 < file.size()) v |= std::to_integer<std::uint32_t>(file[i + 1]) << 8;
        if (i + 2 < file.size()) v |= std::to_integer<std::uint32_t>(file[i + 2]);
        b64 += alphabet[(v >> 18) & 63];
        b64 += alphabet[(v >> 12) & 63];
        b64 += i + 1 < file.size() ? alphabet[(v >> 6) & 63] : '=';
        b64 += i + 2 < file.size() ? alphabet[v & 63] : '=';
    }
    std::string out = std::string(age_armor_begin) + eol;
    for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + eol;
    return out + std::string(age_armor_end) + eol;
}

// ---- the age tool ------------------------------------------------------------------------------

constexpr const char *age_t_age = "/usr/bin/age";
constexpr const char *age_t_keygen = "/usr/bin/age-keygen";

bool age_t_have_tool() {
    const bool have = ::access(age_t_age, X_OK) == 0 && ::access(age_t_keygen, X_OK) == 0;
    if (!have) MESSAGE("the age tool (/usr/bin/age, age-keygen) is not installed: interop checks skipped");
    return have;
}

int age_t_system(const std::string &command) {
    const int status = std::system((command + " 2>/dev/null").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The first line `command` prints.
std::string age_t_output(const std::string &command) {
    std::string out;
    if (FILE *p = ::popen(command.c_str(), "r")) {
        std::array<char, 256> buf{};
        while (std::fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
        ::pclose(p);
    }
    return out.substr(0, out.find('\n'));
}

// A fresh key file from age-keygen at `path`; returns its public key (age-keygen -y).
std::string age_t_keygen_file(const std::string &path) {
    std::filesystem::remove(path);
    REQUIRE(age_t_system(fmt::format("{} -o '{}'", age_t_keygen, path)) == 0);
    const auto recipient = age_t_output(fmt::format("{} -y '{}'", age_t_keygen, path));
    REQUIRE(recipient.starts_with("age1"));
    return recipient;
}

// Runs args[0] (a full path) on a fresh pseudo-terminal, its controlling terminal, and answers each
// prompt that asks for a passphrase with `passphrase`. age reads passphrases from /dev/tty only, so
// a pipe cannot feed it; a terminal of our own can. Returns the exit status (-1: no terminal could
// be made, -2: it did not finish within 30 s); `answers` gets the number of prompts answered.
int age_t_run_on_tty(const std::vector<std::string> &args, const std::string &passphrase, int &answers) {
    std::vector<char *> argv;
    for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    answers = 0;
    int master = -1;
    const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    if (pid < 0) return -1;
    if (pid == 0) {
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::string seen;
    int status = 0;
    bool reaped = false;
    for (;;) {
        pollfd p{master, POLLIN, 0};
        const int ready = ::poll(&p, 1, 100);
        if (ready > 0) {
            std::array<char, 512> buf{};
            const ssize_t n = ::read(master, buf.data(), buf.size());
            if (n <= 0) break;  // EIO: the child has closed the terminal
            seen.append(buf.data(), static_cast<std::size_t>(n));
            std::string lower = seen;
            std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
            const auto at = lower.find("passphrase");
            if (at != std::string::npos && lower.find(':', at) != std::string::npos) {
                const std::string answer = passphrase + "\n";
                if (::write(master, answer.data(), answer.size()) != static_cast<ssize_t>(answer.size())) break;
                ++answers;
                seen.clear();
            }
        } else if (::waitpid(pid, &status, WNOHANG) == pid) {
            reaped = true;
            break;
        } else if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            ::close(master);
            return -2;
        }
    }
    if (!reaped) ::waitpid(pid, &status, 0);
    ::close(master);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- recipients and identities -----------------------------------------------------------------

TEST_CASE("age: Bech32 recipients and identities") {
    // The specification's example pair: the identity's public key is the example recipient.
    auto id = AgeIdentity::parse(age_t_spec_identity);
    REQUIRE(id.has_value());
    CHECK(id.value().recipient().to_string() == age_t_spec_recipient);
    auto r = parse_age_recipient(std::string("  ") + age_t_spec_recipient + "\n");
    REQUIRE(r.has_value());
    CHECK(r.value() == id.value().recipient());

    // A generated identity round-trips through its recipient string.
    const auto fresh = age_t_identity();
    auto again = parse_age_recipient(fresh.recipient().to_string());
    REQUIRE(again.has_value());
    CHECK(again.value() == fresh.recipient());

    SUBCASE("malformed recipients are named with what is wrong") {
        std::string typo = age_t_spec_recipient;
        typo[10] = typo[10] == 'q' ? 'p' : 'q';
        auto e = parse_age_recipient(typo);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::invalid_argument);
        CHECK(e.error().message.find(typo) != std::string::npos);
        CHECK(e.error().message.find("checksum") != std::string::npos);

        std::string mixed = age_t_spec_recipient;
        mixed[5] = static_cast<char>(std::toupper(static_cast<unsigned char>(mixed[5])));
        e = parse_age_recipient(mixed);
        REQUIRE(!e);
        CHECK(e.error().message.find("case") != std::string::npos);

        e = parse_age_recipient("age1");
        REQUIRE(!e);
        CHECK(e.error().code == Errc::invalid_argument);
        e = parse_age_recipient("age1qqqqqqqqqqqqbadchar");
        REQUIRE(!e);
        CHECK(e.error().code == Errc::invalid_argument);
        e = parse_age_recipient("");
        REQUIRE(!e);
        CHECK(e.error().message.find("empty") != std::string::npos);

        e = parse_age_recipient("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host");
        REQUIRE(!e);
        CHECK(e.error().code == Errc::unsupported);
        CHECK(e.error().message.find("SSH") != std::string::npos);
    }

    SUBCASE("a secret key is never repeated in an error") {
        auto e = parse_age_recipient(age_t_spec_identity);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::invalid_argument);
        CHECK(e.error().message.find("GFPYYSJZ") == std::string::npos);
        CHECK(e.error().message.find("age-keygen -y") != std::string::npos);
        e = parse_age_recipient(std::string("x") + age_t_spec_identity);  // not at the start either
        REQUIRE(!e);
        CHECK(e.error().message.find("GFPYYSJZ") == std::string::npos);

        std::string bad = age_t_spec_identity;
        bad[30] = bad[30] == 'Q' ? 'P' : 'Q';
        auto b = AgeIdentity::parse(bad);
        REQUIRE(!b);
        CHECK(b.error().message.find("checksum") != std::string::npos);
        CHECK(b.error().message.find("GFPYYSJZ") == std::string::npos);

        std::string lower = age_t_spec_identity;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        b = AgeIdentity::parse(lower);
        REQUIRE(!b);
        CHECK(b.error().message.find("uppercase") != std::string::npos);
        CHECK(b.error().message.find("gfpyysjz") == std::string::npos);

        b = AgeIdentity::parse(age_t_spec_recipient);  // a public key where a secret one belongs
        REQUIRE(!b);
        CHECK(b.error().code == Errc::invalid_argument);
    }
}

TEST_CASE("age: identity and recipient files") {
    const auto path = age_t_path("age_idfile.txt");
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << "# created: by hand\r\n\r\n# public key: " << age_t_spec_recipient << "\r\n" << age_t_spec_identity << "\r\n\n";
    }
    ::chmod(path.c_str(), 0644);  // readable by others: age allows it, and so do we
    auto ids = read_age_identity_file(path);
    REQUIRE_MESSAGE(ids.has_value(), (ids ? "" : ids.error().message));
    REQUIRE(ids.value().size() == 1);
    CHECK(ids.value()[0].recipient().to_string() == age_t_spec_recipient);

    SUBCASE("a bad line is named by number, never quoted") {
        std::string bad = age_t_spec_identity;
        bad[40] = bad[40] == 'Q' ? 'P' : 'Q';
        {
            std::ofstream f(path, std::ios::binary | std::ios::trunc);
            f << "# comment\n" << age_t_spec_identity << "\n" << bad << "\n";
        }
        auto e = read_age_identity_file(path);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::invalid_argument);
        CHECK(e.error().message.find("line 3") != std::string::npos);
        CHECK(e.error().message.find(path) != std::string::npos);
        CHECK(e.error().message.find("GFPYYSJZ") == std::string::npos);
    }
    SUBCASE("no identity, missing file, an encrypted identity file") {
        {
            std::ofstream f(path, std::ios::binary | std::ios::trunc);
            f << "# only a comment\n\n";
        }
        auto e = read_age_identity_file(path);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::invalid_argument);
        e = read_age_identity_file(age_t_path("age_idfile_missing.txt"));
        REQUIRE(!e);
        CHECK(e.error().code == Errc::not_found);
        {
            std::ofstream f(path, std::ios::binary | std::ios::trunc);
            f << age_version_line << "-> scrypt AAAAAAAAAAAAAAAAAAAAAA 18\n";
        }
        e = read_age_identity_file(path);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::unsupported);
    }
    SUBCASE("recipients files") {
        const auto rpath = age_t_path("age_rfile.txt");
        const auto other = age_t_identity().recipient();
        {
            std::ofstream f(rpath, std::ios::binary | std::ios::trunc);
            f << "# team\n" << age_t_spec_recipient << "\n\n" << other.to_string() << "\n";
        }
        auto rs = read_age_recipients_file(rpath);
        REQUIRE(rs.has_value());
        REQUIRE(rs.value().size() == 2);
        CHECK(rs.value()[1] == other);
        {
            std::ofstream f(rpath, std::ios::binary | std::ios::trunc);
            f << age_t_spec_recipient << "\nage1notarecipient\n";
        }
        rs = read_age_recipients_file(rpath);
        REQUIRE(!rs);
        CHECK(rs.error().message.find("line 2") != std::string::npos);
        CHECK(rs.error().message.find("age1notarecipient") != std::string::npos);
    }
}

// ---- round trips -------------------------------------------------------------------------------

TEST_CASE("age: round trips to one and three recipients") {
    const std::vector<AgeIdentity> ids = {age_t_identity(), age_t_identity(), age_t_identity()};
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, K64 - 1, K64, K64 + 1, 3 * K64, 3 * K64 + 17}) {
        CAPTURE(size);
        const Bytes plain = hypersdk::test::pattern(size, static_cast<unsigned>(size) + 1);

        const Bytes one = age_t_encrypt(age_t_to({ids[0]}), plain);
        CHECK(looks_like_age(one));
        CHECK(age_t_decrypt(age_t_with({ids[0]}), one) == plain);
        auto r = age_t_open(age_t_with({ids[0]}), one);
        REQUIRE(r.has_value());
        CHECK(r.value().plaintext_size() == size);
        CHECK(r.value().chunk_count() == std::max<std::uint64_t>(1, (size + K64 - 1) / K64));
        CHECK(r.value().header().stanza_types == std::vector<std::string>{"X25519"});
        CHECK(!r.value().header().armored);
        CHECK(one.size() == age_encrypted_size(r.value().header().header_size, size));

        // Three recipients, written in odd pieces: each identity opens it alone.
        const Bytes three = age_t_encrypt(age_t_to(ids), plain, 1000);
        for (const auto &id : ids) CHECK(age_t_decrypt(age_t_with({id}), three) == plain);
        CHECK(age_t_decrypt(age_t_with({age_t_identity(), ids[2]}), three) == plain);
    }
}

TEST_CASE("age: round trips with a passphrase") {
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, K64, K64 + 1, 2 * K64 + 5}) {
        CAPTURE(size);
        const Bytes plain = hypersdk::test::pattern(size, 77);
        const Bytes file = age_t_encrypt(age_t_to_passphrase(), plain, 4096);
        CHECK(age_t_decrypt(age_t_with_passphrase(), file) == plain);
        auto r = AgeReader::open_with_passphrase(age_t_passphrase(), age_t_read_at(file), file.size());
        REQUIRE(r.has_value());
        CHECK(r.value().header().passphrase());
        CHECK(r.value().header().scrypt_log2_work == age_t_fast_work);
    }
    const Bytes plain = hypersdk::test::pattern(5000, 3);
    const Bytes file = age_t_encrypt(age_t_to_passphrase(), plain);

    auto e = age_t_open(age_t_with_passphrase("Correct horse battery staple"), file);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::auth_failed);
    CHECK(e.error().message.find("wrong passphrase") != std::string::npos);

    e = age_t_open(age_t_with({age_t_identity()}), file);  // identities for a passphrase file
    REQUIRE(!e);
    CHECK(e.error().code == Errc::auth_failed);
    CHECK(e.error().message.find("passphrase") != std::string::npos);

    // Given both, the passphrase is used for a passphrase file, identities for the others.
    auto both = age_t_with({age_t_identity()});
    both.passphrase = age_t_passphrase();
    CHECK(age_t_decrypt(both, file) == plain);
    const auto id = age_t_identity();
    both.identities.push_back(id);
    CHECK(age_t_decrypt(both, age_t_encrypt(age_t_to({id}), plain)) == plain);

    e = age_t_open(age_t_with_passphrase(), age_t_encrypt(age_t_to({id}), plain));  // a passphrase for a recipient file
    REQUIRE(!e);
    CHECK(e.error().code == Errc::auth_failed);
    CHECK(e.error().message.find("identity") != std::string::npos);

    SUBCASE("what the writer refuses") {
        Bytes sink;
        auto keys = age_t_to_passphrase();
        keys.scrypt_log2_work = 30;
        auto w = AgeWriter::create(keys, age_t_sink(sink));
        REQUIRE(!w);
        CHECK(w.error().code == Errc::invalid_argument);
        std::array<std::byte, 32> raw{};
        auto raw_key = EncryptionKey::from_raw_key(raw);
        REQUIRE(raw_key.has_value());
        w = AgeWriter::create_for_passphrase(raw_key.value(), age_t_sink(sink), age_t_fast_work);
        REQUIRE(!w);
        CHECK(w.error().code == Errc::invalid_argument);
        keys.scrypt_log2_work = age_t_fast_work;
        keys.recipients.push_back(id.recipient());  // both: age never mixes them
        w = AgeWriter::create(keys, age_t_sink(sink));
        REQUIRE(!w);
        w = AgeWriter::create(AgeEncryptKeys{}, age_t_sink(sink));
        REQUIRE(!w);
        CHECK(sink.empty());
    }
}

TEST_CASE("age: random access across chunk boundaries, from several threads") {
    const auto id = age_t_identity();
    const Bytes plain = hypersdk::test::pattern(5 * K64 + 1234, 11);
    const Bytes file = age_t_encrypt(age_t_to({id}), plain);
    auto r = age_t_open(age_t_with({id}), file);
    REQUIRE(r.has_value());
    const auto &reader = r.value();

    for (const std::uint64_t off : {std::uint64_t{0}, std::uint64_t{K64 - 1}, std::uint64_t{K64}, std::uint64_t{2 * K64 - 7},
                                    std::uint64_t{5 * K64}, std::uint64_t{plain.size() - 1}}) {
        Bytes out(K64 + 100);
        auto n = reader.read_at(off, out);
        REQUIRE(n.has_value());
        const auto want = std::min<std::size_t>(out.size(), plain.size() - off);
        REQUIRE(n.value() == want);
        CHECK(std::equal(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(want), plain.begin() + static_cast<std::ptrdiff_t>(off)));
    }
    Bytes tail(10);
    CHECK(reader.read_at(plain.size(), tail).value() == 0);
    CHECK(reader.read_at(plain.size() + 5, tail).value() == 0);

    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            std::uint32_t x = 12345 + t;
            Bytes out(3 * K64);
            for (int i = 0; i < 60; ++i) {
                x = x * 1664525u + 1013904223u;
                const std::uint64_t off = x % plain.size();
                x = x * 1664525u + 1013904223u;
                const std::size_t len = 1 + x % out.size();
                auto n = reader.read_at(off, std::span(out).first(len));
                const auto want = std::min<std::size_t>(len, plain.size() - off);
                if (!n || n.value() != want ||
                    !std::equal(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(want), plain.begin() + static_cast<std::ptrdiff_t>(off)))
                    ++mismatches;
            }
        });
    for (auto &th : threads) th.join();
    CHECK(mismatches == 0);

    // read_chunk for sequential consumers.
    Bytes chunk(K64);
    auto n = reader.read_chunk(5, chunk);
    REQUIRE(n.has_value());
    CHECK(n.value() == 1234);
    CHECK(std::equal(chunk.begin(), chunk.begin() + 1234, plain.begin() + 5 * K64));
    CHECK(!reader.read_chunk(6, chunk));
}

// ---- damaged and hostile files -----------------------------------------------------------------

TEST_CASE("age: wrong keys, truncated, extended, reordered and tampered files") {
    const std::vector<AgeIdentity> ids = {age_t_identity(), age_t_identity()};
    const Bytes plain = hypersdk::test::pattern(3 * K64 + 500, 5);
    const Bytes file = age_t_encrypt(age_t_to(ids), plain);
    const std::size_t payload = age_t_header_end(file) + age_payload_nonce_size;  // chunk 0 starts here
    REQUIRE(file.size() == payload + 3 * SEALED + 500 + age_tag_size);
    const auto keys = age_t_with({ids[0]});

    SUBCASE("a wrong identity") {
        auto e = age_t_open(age_t_with({age_t_identity()}), file);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::auth_failed);
        CHECK(e.error().message.find("no identity matches") != std::string::npos);
    }
    SUBCASE("truncated") {
        for (const std::size_t cut : {std::size_t{10}, payload - 20, payload - 3, payload, payload + 10, payload + SEALED,
                                      payload + 3 * SEALED, payload + 3 * SEALED + 7, file.size() - 1}) {
            CAPTURE(cut);
            const Bytes shorter(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(cut));
            auto e = age_t_open(keys, shorter);
            REQUIRE(!e);
            CHECK(e.error().code == Errc::corrupt_image);
        }
        const Bytes at_boundary(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(payload + 2 * SEALED));
        auto e = age_t_open(keys, at_boundary);
        REQUIRE(!e);
        CHECK(e.error().message.find("truncated") != std::string::npos);
    }
    SUBCASE("extended") {
        for (const std::size_t extra : {std::size_t{1}, std::size_t{16}, std::size_t{100}, SEALED}) {
            CAPTURE(extra);
            Bytes longer = file;
            longer.insert(longer.end(), extra, std::byte{0});
            auto e = age_t_open(keys, longer);
            REQUIRE(!e);
            CHECK(e.error().code == Errc::corrupt_image);
        }
        // A whole second file appended: its chunks authenticate under neither key nor position.
        Bytes doubled = file;
        doubled.insert(doubled.end(), file.begin() + static_cast<std::ptrdiff_t>(payload), file.end());
        CHECK(!age_t_open(keys, doubled));
    }
    SUBCASE("reordered chunks") {
        Bytes swapped = file;
        std::swap_ranges(swapped.begin() + static_cast<std::ptrdiff_t>(payload),
                         swapped.begin() + static_cast<std::ptrdiff_t>(payload + SEALED),
                         swapped.begin() + static_cast<std::ptrdiff_t>(payload + SEALED));
        auto r = age_t_open(keys, swapped);
        REQUIRE(r.has_value());  // the final chunk is intact
        Bytes out(10);
        auto e = r.value().read_at(0, out);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::corrupt_image);
        CHECK(!r.value().verify_all());
    }
    SUBCASE("one flipped payload byte: no byte of that chunk is released") {
        Bytes flipped = file;
        flipped[payload + SEALED + 1000] ^= std::byte{0x01};  // in chunk 1
        auto r = age_t_open(keys, flipped);
        REQUIRE(r.has_value());
        Bytes out(2 * K64, std::byte{0xAA});
        auto e = r.value().read_at(K64 - 100, out);  // the end of chunk 0, then chunk 1
        REQUIRE(!e);
        CHECK(e.error().code == Errc::corrupt_image);
        CHECK(e.error().message.find("chunk 1") != std::string::npos);
        CHECK(std::all_of(out.begin() + 100, out.end(), [](std::byte b) { return b == std::byte{0xAA}; }));
        Bytes head(K64);
        auto ok = r.value().read_at(0, head);  // chunk 0 is fine
        REQUIRE(ok.has_value());
        CHECK(std::equal(head.begin(), head.end(), plain.begin()));
        CHECK(!r.value().verify_all());
        Bytes chunk(K64, std::byte{0xAA});
        CHECK(!r.value().read_chunk(1, chunk));
        CHECK(std::all_of(chunk.begin(), chunk.end(), [](std::byte b) { return b == std::byte{0xAA}; }));

        Bytes last = file;
        last[file.size() - 3] ^= std::byte{0x80};  // the final chunk's tag: open fails
        auto e2 = age_t_open(keys, last);
        REQUIRE(!e2);
        CHECK(e2.error().code == Errc::corrupt_image);
    }
    SUBCASE("one changed header byte: the MAC fails") {
        // The second stanza's body (its first character, so the base64 stays canonical): the first
        // identity still unwraps the file key from the first stanza, and the MAC then fails.
        const auto text = age_t_text(file);
        const auto second = text.find("-> X25519", text.find("-> X25519") + 1);
        REQUIRE(second != std::string::npos);
        const auto body = text.find('\n', second) + 1;
        Bytes changed = file;
        changed[body] = static_cast<std::byte>(text[body] == 'A' ? 'B' : 'A');
        auto e = age_t_open(keys, changed);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::auth_failed);
        CHECK(e.error().message.find("MAC") != std::string::npos);

        // The MAC itself.
        Bytes mac = file;
        const auto mac_at = text.find("\n--- ") + 5;
        mac[mac_at] = static_cast<std::byte>(text[mac_at] == 'A' ? 'B' : 'A');
        e = age_t_open(keys, mac);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::auth_failed);

        // A non-canonical encoding is refused outright (spec: decoders MUST reject it).
        Bytes noncanon = file;
        const auto mac_end = text.find('\n', mac_at) - 1;  // the last character carries 2 unused bits
        noncanon[mac_end] = static_cast<std::byte>(text[mac_end] ^ 1);
        e = age_t_open(keys, noncanon);
        REQUIRE(!e);
        CHECK((e.error().code == Errc::corrupt_image || e.error().code == Errc::auth_failed));
    }
    SUBCASE("not an age file at all") {
        auto e = age_t_open(keys, age_t_bytes("hello, this is plain text\n"));
        REQUIRE(!e);
        CHECK(e.error().code == Errc::invalid_argument);
        e = age_t_open(keys, Bytes{});
        REQUIRE(!e);
        e = age_t_open(keys, age_t_bytes("age-encryption.org/v2\n-> X25519 abc\n\n--- x\n"));
        REQUIRE(!e);
        CHECK(e.error().code == Errc::unsupported);
        CHECK(e.error().message.find("v2") != std::string::npos);
    }
}

TEST_CASE("age: scrypt headers: the work factor is bounded, the stanza stands alone") {
    // A hand-made header: the work factor is refused before any scrypt runs or any MAC is checked.
    const std::string header = std::string(age_version_line) +
                               "-> scrypt AAAAAAAAAAAAAAAAAAAAAA 30\n"
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
                               "--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
    Bytes file = age_t_bytes(header);
    file.insert(file.end(), age_payload_nonce_size + age_tag_size, std::byte{0});
    const auto started = std::chrono::steady_clock::now();
    auto e = age_t_open(age_t_with_passphrase(), file);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::unsupported);
    CHECK(e.error().message.find("30") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
    auto info = inspect_age_header(age_t_read_at(file), file.size());
    REQUIRE(info.has_value());
    CHECK(info.value().stanza_types == std::vector<std::string>{"scrypt"});
    CHECK(info.value().scrypt_log2_work == 30);

    // Leading zeros and signs are malformed, not large.
    for (const char *work : {"010", "+10", "0x1", "-1", "0"}) {
        CAPTURE(work);
        std::string h = header;
        h.replace(h.find(" 30\n") + 1, 2, work);
        Bytes f = age_t_bytes(h);
        f.insert(f.end(), 32, std::byte{0});
        e = age_t_open(age_t_with_passphrase(), f);
        REQUIRE(!e);
        CHECK(e.error().code == Errc::corrupt_image);
    }

    // An scrypt stanza beside another one (here a grease stanza) is refused, whatever the keys.
    Bytes mixed;
    auto w = AgeWriter::create_with_extra_stanzas_for_tests(age_t_to_passphrase(), age_t_sink(mixed), {{{"grease"}, {}}});
    REQUIRE(w.has_value());
    REQUIRE(w.value().finish().has_value());
    e = age_t_open(age_t_with_passphrase(), mixed);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::corrupt_image);
    CHECK(e.error().message.find("only stanza") != std::string::npos);
}

TEST_CASE("age: unknown (grease) stanzas are skipped, long bodies wrap at 64 columns") {
    const auto id = age_t_identity();
    const Bytes plain = hypersdk::test::pattern(70000, 9);
    std::vector<AgeExtraStanza> grease;
    for (const std::size_t n : {std::size_t{0}, std::size_t{47}, std::size_t{48}, std::size_t{96}, std::size_t{200}}) {
        AgeExtraStanza s;
        s.args = {fmt::format("grease-{}", n), "x", "y+/="};
        s.body = hypersdk::test::pattern(n, static_cast<unsigned>(n));
        grease.push_back(std::move(s));
    }
    Bytes file;
    auto w = AgeWriter::create_with_extra_stanzas_for_tests(age_t_to({id}), age_t_sink(file), grease);
    REQUIRE(w.has_value());
    REQUIRE(w.value().write(plain).has_value());
    REQUIRE(w.value().finish().has_value());
    const auto text = age_t_text(file).substr(0, age_t_header_end(file));
    // 48 bytes are exactly 64 base64 columns: a full line, then the empty final line.
    const auto g48 = text.find("-> grease-48 x y+/=\n");
    REQUIRE(g48 != std::string::npos);
    const auto full_line = text.find('\n', g48) + 1;
    CHECK(text.find('\n', full_line) - full_line == 64);
    CHECK(text[text.find('\n', full_line) + 1] == '\n');
    std::size_t longest = 0;
    for (std::size_t at = 0; at < text.size();) {
        const auto lf = text.find('\n', at);
        if (text.compare(at, 2, "->") != 0 && text.compare(at, 3, "---") != 0) longest = std::max(longest, lf - at);
        at = lf + 1;
    }
    CHECK(longest == 64);
    CHECK(age_t_decrypt(age_t_with({id}), file) == plain);
    auto info = inspect_age_header(age_t_read_at(file), file.size());
    REQUIRE(info.has_value());
    CHECK(info.value().stanza_types.size() == 6);
    CHECK(info.value().stanza_types.back() == "X25519");

    if (!age_t_have_tool()) return;
    // age itself parses our long bodies and skips the grease too.
    const auto key = age_t_path("age_grease_key.txt");
    const auto recipient = age_t_keygen_file(key);
    auto ids = read_age_identity_file(key);
    REQUIRE(ids.has_value());
    auto r = parse_age_recipient(recipient);
    REQUIRE(r.has_value());
    CHECK(r.value() == ids.value()[0].recipient());
    Bytes file2;
    AgeEncryptKeys to;
    to.recipients = {r.value()};
    auto w2 = AgeWriter::create_with_extra_stanzas_for_tests(to, age_t_sink(file2), grease);
    REQUIRE(w2.has_value());
    REQUIRE(w2.value().write(plain).has_value());
    REQUIRE(w2.value().finish().has_value());
    const auto enc = hypersdk::test::write_file("age_grease.age", file2);
    const auto dec = age_t_path("age_grease.out");
    std::filesystem::remove(dec);
    CHECK(age_t_system(fmt::format("{} -d -i '{}' -o '{}' '{}'", age_t_age, key, dec, enc)) == 0);
    CHECK(age_t_load(dec) == plain);
}

// ---- ASCII armor -------------------------------------------------------------------------------

TEST_CASE("age: ASCII armor is read, strictly") {
    const auto id = age_t_identity();
    const Bytes plain = hypersdk::test::pattern(2 * K64 + 3, 21);
    const Bytes file = age_t_encrypt(age_t_to({id}), plain);
    const std::string armored = age_t_armor(file);
    CHECK(looks_like_age(age_t_bytes(armored)));
    CHECK(looks_like_age(age_t_bytes("\n  \r\n" + armored)));

    auto r = age_t_open(age_t_with({id}), age_t_bytes(armored));
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
    CHECK(r.value().header().armored);
    CHECK(age_t_read_all(r.value()) == plain);
    Bytes piece(100);
    REQUIRE(r.value().read_at(K64 - 50, piece).value() == 100);
    CHECK(std::equal(piece.begin(), piece.end(), plain.begin() + K64 - 50));

    // CRLF lines, whitespace around the block, no final line end: all fine.
    CHECK(age_t_decrypt(age_t_with({id}), age_t_bytes(age_t_armor(file, "\r\n"))) == plain);
    CHECK(age_t_decrypt(age_t_with({id}), age_t_bytes(" \n\t\n" + armored + "\n \n")) == plain);
    CHECK(age_t_decrypt(age_t_with({id}), age_t_bytes(armored.substr(0, armored.size() - 1))) == plain);

    auto refused = [&](const std::string &text) {
        auto e = age_t_open(age_t_with({id}), age_t_bytes(text));
        REQUIRE(!e);
        CHECK(e.error().code == Errc::corrupt_image);
        CHECK(e.error().message.find("armor") != std::string::npos);
    };
    refused(armored + "garbage\n");                                              // data after END
    refused(std::string(armored).insert(armored.find('\n') + 1, "\n"));          // an empty line
    refused(std::string(armored).insert(armored.find('\n') + 1, " "));           // a line starting with a space
    refused(std::string(armored).replace(armored.find("-----END"), 8, "-----FIN"));  // no END line
    // Padding bits set (non-canonical): armor a file whose length leaves padding, then set the
    // lowest bit of the character before the "=".
    Bytes odd = file;
    if (odd.size() % 3 == 0) odd.push_back(std::byte{0});
    std::string noncanon = age_t_armor(odd);
    const auto pad = noncanon.find('=');
    REQUIRE(pad != std::string::npos);
    constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    noncanon[pad - 1] = alphabet[alphabet.find(noncanon[pad - 1]) | 1];
    refused(noncanon);
    std::string bad_char = armored;
    bad_char[armored.find('\n') + 5] = '*';
    refused(bad_char);
}

// ---- whole files -------------------------------------------------------------------------------

TEST_CASE("age: whole files are atomic, decrypted output is private") {
    const auto id = age_t_identity();
    const Bytes plain = hypersdk::test::pattern(3 * K64 + 99, 31);
    const auto in = hypersdk::test::write_file("age_whole.raw", plain);
    const auto enc = age_t_path("age_whole.age");
    const auto dec = age_t_path("age_whole.out");
    std::filesystem::remove(enc);
    std::filesystem::remove(dec);

    REQUIRE(age_encrypt_file(age_t_to({id}), in, enc, false).has_value());
    CHECK(looks_like_age(age_t_load(enc)));
    REQUIRE(age_decrypt_file(age_t_with({id}), enc, dec, false).has_value());
    CHECK(age_t_load(dec) == plain);
    struct stat st {};
    REQUIRE(::stat(dec.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    // overwrite = false refuses an existing output and leaves it alone.
    auto e = age_decrypt_file(age_t_with({id}), enc, dec, false);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::conflict);
    e = age_encrypt_file(age_t_to({id}), in, enc, false);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::conflict);

    // A failed decryption leaves neither output nor temporary, and the old output stands.
    e = age_decrypt_file(age_t_with({age_t_identity()}), enc, dec, true);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::auth_failed);
    CHECK(e.error().message.find(enc) != std::string::npos);
    CHECK(age_t_load(dec) == plain);
    Bytes damaged = age_t_load(enc);
    damaged[damaged.size() - 2 * SEALED] ^= std::byte{1};  // a middle chunk: found while writing
    const auto bad = hypersdk::test::write_file("age_whole_bad.age", damaged);
    const auto bad_out = age_t_path("age_whole_bad.out");
    std::filesystem::remove(bad_out);
    e = age_decrypt_file(age_t_with({id}), bad, bad_out, true);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::corrupt_image);
    CHECK(!hypersdk::test::exists(bad_out));
    CHECK(hypersdk::test::leftover_temporaries("age_whole") == 0);

    // Passphrase files and armored input.
    const auto penc = age_t_path("age_whole_p.age");
    REQUIRE(age_encrypt_file(age_t_to_passphrase(), in, penc, true).has_value());
    REQUIRE(age_decrypt_file(age_t_with_passphrase(), penc, dec, true).has_value());
    CHECK(age_t_load(dec) == plain);
    const auto armored = hypersdk::test::write_file("age_whole.asc", age_t_bytes(age_t_armor(age_t_load(enc))));
    REQUIRE(age_decrypt_file(age_t_with({id}), armored, dec, true).has_value());
    CHECK(age_t_load(dec) == plain);
    CHECK(hypersdk::test::leftover_temporaries("age_whole") == 0);
}

// ---- interop with the age tool -----------------------------------------------------------------

TEST_CASE("age: interop: files we write decrypt with age") {
    if (!age_t_have_tool()) return;
    const auto key = age_t_path("age_iw_key.txt");
    const auto recipient = age_t_keygen_file(key);
    auto r = parse_age_recipient(recipient);
    REQUIRE(r.has_value());
    const auto other = age_t_identity();
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, K64, K64 + 1, 3 * K64 + 5}) {
        CAPTURE(size);
        const Bytes plain = hypersdk::test::pattern(size, 101);
        AgeEncryptKeys to;
        to.recipients = {other.recipient(), r.value()};  // age's key in second place
        const auto enc = hypersdk::test::write_file("age_iw.age", age_t_encrypt(to, plain));
        const auto dec = age_t_path("age_iw.out");
        std::filesystem::remove(dec);
        REQUIRE(age_t_system(fmt::format("{} -d -i '{}' -o '{}' '{}'", age_t_age, key, dec, enc)) == 0);
        CHECK(age_t_load(dec) == plain);
    }
    // And age refuses what we refuse: a damaged file.
    AgeEncryptKeys to;
    to.recipients = {r.value()};
    Bytes damaged = age_t_encrypt(to, hypersdk::test::pattern(1000, 1));
    damaged[damaged.size() - 20] ^= std::byte{4};
    const auto enc = hypersdk::test::write_file("age_iw_bad.age", damaged);
    CHECK(age_t_system(fmt::format("{} -d -i '{}' -o /dev/null '{}'", age_t_age, key, enc)) != 0);
}

TEST_CASE("age: interop: files age writes decrypt with ours") {
    if (!age_t_have_tool()) return;
    const auto key = age_t_path("age_ir_key.txt");
    const auto recipient = age_t_keygen_file(key);
    const auto key2 = age_t_path("age_ir_key2.txt");
    const auto recipient2 = age_t_keygen_file(key2);
    auto ids = read_age_identity_file(key);
    REQUIRE(ids.has_value());
    auto ids2 = read_age_identity_file(key2);
    REQUIRE(ids2.has_value());
    const auto rfile = age_t_path("age_ir_recipients.txt");
    {
        std::ofstream f(rfile, std::ios::trunc);
        f << "# two keys\n" << recipient2 << "\n" << recipient << "\n";
    }
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, K64, K64 + 1, 3 * K64 + 5}) {
        CAPTURE(size);
        const Bytes plain = hypersdk::test::pattern(size, 202);
        const auto in = hypersdk::test::write_file("age_ir.raw", plain);
        const auto enc = age_t_path("age_ir.age");

        // age -r
        std::filesystem::remove(enc);
        REQUIRE(age_t_system(fmt::format("{} -r {} -o '{}' '{}'", age_t_age, recipient, enc, in)) == 0);
        CHECK(age_t_decrypt(age_t_with(ids.value()), age_t_load(enc)) == plain);
        auto e = age_t_open(age_t_with(ids2.value()), age_t_load(enc));
        REQUIRE(!e);
        CHECK(e.error().code == Errc::auth_failed);

        // age -R (two recipients): either key opens it
        std::filesystem::remove(enc);
        REQUIRE(age_t_system(fmt::format("{} -R '{}' -o '{}' '{}'", age_t_age, rfile, enc, in)) == 0);
        CHECK(age_t_decrypt(age_t_with(ids.value()), age_t_load(enc)) == plain);
        CHECK(age_t_decrypt(age_t_with(ids2.value()), age_t_load(enc)) == plain);

        // age -a (armored), whole file and random access
        std::filesystem::remove(enc);
        REQUIRE(age_t_system(fmt::format("{} -a -r {} -o '{}' '{}'", age_t_age, recipient, enc, in)) == 0);
        const Bytes armored = age_t_load(enc);
        CHECK(age_t_text(armored).starts_with(age_armor_begin));
        auto r = age_t_open(age_t_with(ids.value()), armored);
        REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message));
        CHECK(r.value().header().armored);
        CHECK(age_t_read_all(r.value()) == plain);
        const auto dec = age_t_path("age_ir.out");
        REQUIRE(age_decrypt_file(age_t_with(ids.value()), enc, dec, true).has_value());
        CHECK(age_t_load(dec) == plain);
    }
    // age-keygen -y agrees with our public keys.
    CHECK(ids.value()[0].recipient().to_string() == recipient);
}

TEST_CASE("age: interop: passphrases, through a terminal") {
    // age reads passphrases only from its terminal (/dev/tty), so each direction runs it on a
    // pseudo-terminal of ours that answers the prompts. age -p always uses work factor 18, so the
    // age -> ours direction costs about a second of scrypt on each side.
    if (!age_t_have_tool()) return;
    const Bytes plain = hypersdk::test::pattern(K64 + 10, 303);
    const auto in = hypersdk::test::write_file("age_ip.raw", plain);

    // Ours (work factor 10) -> age -d.
    const auto ours = hypersdk::test::write_file("age_ip_ours.age", age_t_encrypt(age_t_to_passphrase(), plain));
    const auto dec = age_t_path("age_ip.out");
    std::filesystem::remove(dec);
    int answers = 0;
    const int status = age_t_run_on_tty({age_t_age, "-d", "-o", dec, ours}, age_t_pass, answers);
    if (status == -1) {
        MESSAGE("no pseudo-terminal available: the passphrase interop checks are skipped");
        return;
    }
    CHECK(status == 0);
    CHECK(answers == 1);
    CHECK(age_t_load(dec) == plain);

    // age -p -> ours.
    const auto theirs = age_t_path("age_ip_theirs.age");
    std::filesystem::remove(theirs);
    CHECK(age_t_run_on_tty({age_t_age, "-p", "-o", theirs, in}, age_t_pass, answers) == 0);
    CHECK(answers == 2);  // the passphrase, then its confirmation
    const Bytes file = age_t_load(theirs);
    auto info = inspect_age_header(age_t_read_at(file), file.size());
    REQUIRE(info.has_value());
    CHECK(info.value().passphrase());
    CHECK(age_t_decrypt(age_t_with_passphrase(), file) == plain);
    auto e = age_t_open(age_t_with_passphrase("not the passphrase"), file);
    REQUIRE(!e);
    CHECK(e.error().code == Errc::auth_failed);
}

TEST_CASE("age: recognising files") {
    CHECK(looks_like_age(age_t_bytes("age-encryption.org/v1\n-> X25519 ")));
    CHECK(looks_like_age(age_t_bytes("age-encryption.org/v2\n")));  // then refused as unsupported
    CHECK(looks_like_age(age_t_bytes("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl")));
    CHECK(looks_like_age(age_t_bytes("\r\n\t -----BEGIN AGE ENCRYPTED FILE-----\n")));
    CHECK(!looks_like_age(age_t_bytes(std::string_view("HSDKENC\0", 8))));
    CHECK(!looks_like_age(age_t_bytes("-----BEGIN PGP MESSAGE-----\n")));
    CHECK(!looks_like_age(age_t_bytes("age-encryption.org")));
    CHECK(!looks_like_age(Bytes{}));
}

}  // namespace age_test
