// OpenPGP through GPGME, tested against the installed GnuPG (/usr/bin/gpg): every case makes its
// own GnuPG homes with fresh keys (ed25519 + cv25519, fast to make) in a folder of its own under
// /tmp (short, because gpg-agent's socket lives in the home and socket paths are limited to 108
// bytes), and stops their agents and removes the folder at the end.
#include "io/gpg.hpp"

#include "scratch.hpp"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

// Everything lives in one named namespace: test files are compiled in unity batches, and these
// using-declarations must not leak into the next file of the batch.
namespace gpg_test {

using namespace hypersdk;
using namespace hypersdk::io;
using Bytes = std::vector<std::byte>;

Bytes gpg_test_read(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Bytes out(chars.size());
    if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
    return out;
}

void gpg_test_write(const std::string &path, const Bytes &bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes gpg_test_bytes(std::string_view text) {
    Bytes out(text.size());
    std::memcpy(out.data(), text.data(), text.size());
    return out;
}

bool gpg_test_exists(const std::string &path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
}

// A folder of its own under /tmp holding the case's homes and files; stops the homes' agents and
// removes everything when destroyed.
class GpgTestDir {
public:
    GpgTestDir() {
        char tmpl[] = "/tmp/hg-XXXXXX";
        const char *made = ::mkdtemp(tmpl);
        REQUIRE(made != nullptr);
        root_ = made;
    }
    GpgTestDir(const GpgTestDir &) = delete;
    GpgTestDir &operator=(const GpgTestDir &) = delete;
    ~GpgTestDir() {
        for (const auto &home : homes_) (void)run({"gpgconf", "--homedir", home, "--kill", "gpg-agent"});
        // The agents remove their sockets as they go: a second pass takes what the first raced with.
        std::error_code ec;
        for (int attempt = 0; attempt < 5; ++attempt) {
            std::filesystem::remove_all(root_, ec);
            if (!std::filesystem::exists(root_, ec)) break;
            ::usleep(100000);
        }
    }

    [[nodiscard]] std::string path(const std::string &name) const { return root_ + "/" + name; }

    // Runs a program (argv[0] looked up in PATH) with stdin from /dev/null, stdout to `out` (or
    // /dev/null) and stderr to the log; returns its exit status (-1 if it did not exit).
    int run(const std::vector<std::string> &argv, const std::string &out = "") const {
        const std::string log = path("log");
        const pid_t pid = ::fork();
        if (pid == 0) {
            const int in_fd = ::open("/dev/null", O_RDONLY);
            const int out_fd = ::open(out.empty() ? "/dev/null" : out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int err_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (in_fd < 0 || out_fd < 0 || err_fd < 0) ::_exit(126);
            ::dup2(in_fd, 0);
            ::dup2(out_fd, 1);
            ::dup2(err_fd, 2);
            std::vector<char *> args;
            for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
            args.push_back(nullptr);
            ::execvp(args[0], args.data());
            ::_exit(127);
        }
        if (pid < 0) return -1;
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

    // gpg on `home`, unattended.
    int gpg(const std::string &home, std::vector<std::string> args, const std::string &out = "") const {
        std::vector<std::string> argv{"gpg", "--homedir", home, "--batch", "--yes", "--no-tty", "--quiet"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, out);
    }

    // What gpg wrote on stderr so far (shown when a step fails).
    [[nodiscard]] std::string log() const {
        const auto bytes = gpg_test_read(path("log"));
        return std::string(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    }

    // A new, empty GnuPG home (mode 0700, as gpg wants it).
    std::string make_home(const std::string &name) {
        const std::string home = path(name);
        REQUIRE(::mkdir(home.c_str(), 0700) == 0);
        homes_.push_back(home);
        return home;
    }

    // A new key without passphrase (ed25519 to sign, a cv25519 subkey to encrypt); returns the
    // fingerprint of its primary key, as gpg lists it.
    std::string make_key(const std::string &home, const std::string &uid) {
        INFO(log());
        REQUIRE(gpg(home, {"--passphrase", "", "--quick-gen-key", uid, "future-default", "default", "never"}) == 0);
        return fingerprint(home, uid);
    }

    [[nodiscard]] std::string fingerprint(const std::string &home, const std::string &pattern) const {
        const std::string listing = path("listing");
        INFO(log());
        REQUIRE(gpg(home, {"--with-colons", "--list-keys", pattern}, listing) == 0);
        const auto bytes = gpg_test_read(listing);
        const std::string text(reinterpret_cast<const char *>(bytes.data()), bytes.size());
        // The first "fpr:" record follows the "pub:" one: the primary key's.
        const auto at = text.find("\nfpr:");
        REQUIRE(at != std::string::npos);
        const auto start = text.find_first_not_of(':', at + 5);
        const auto end = text.find(':', start);
        return text.substr(start, end - start);
    }

    // Copies `from`'s public key `pattern` into `to`.
    void share_public_key(const std::string &from, const std::string &to, const std::string &pattern) const {
        const std::string exported = path("exported.pub");
        INFO(log());
        REQUIRE(gpg(from, {"--export", pattern}, exported) == 0);
        REQUIRE(gpg(to, {"--import", exported}) == 0);
    }

    // Temporaries (".NAME.hsdk-PID-RANDOM.part") left in the folder.
    [[nodiscard]] int temporaries() const {
        int n = 0;
        for (const auto &e : std::filesystem::directory_iterator(root_))
            if (e.path().filename().string().find(".hsdk-") != std::string::npos) ++n;
        return n;
    }

private:
    std::string root_;
    std::vector<std::string> homes_;
};

GpgOptions gpg_test_options(const std::string &home) {
    GpgOptions o;
    o.home = home;
    return o;
}

// ---- recognising a message -----------------------------------------------------------------------

TEST_CASE("gpg: looks_like_openpgp recognises armor and the first packets of a message, in both formats") {
    auto looks = [](std::initializer_list<unsigned> bytes) {
        Bytes b;
        for (const unsigned v : bytes) b.push_back(static_cast<std::byte>(v));
        return looks_like_openpgp(b);
    };
    CHECK(looks_like_openpgp(gpg_test_bytes("-----BEGIN PGP MESSAGE-----\n\nhQEMA...")));
    CHECK(looks_like_openpgp(gpg_test_bytes("\r\n  -----BEGIN PGP MESSAGE-----\n")));
    CHECK_FALSE(looks_like_openpgp(gpg_test_bytes("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")));
    CHECK_FALSE(looks_like_openpgp(gpg_test_bytes("-----BEGIN PGP MESS")));

    // Old format: PKESK (tag 1, two length bytes, version 3), as gpg --rfc2440 writes it.
    CHECK(looks({0x85, 0x01, 0x8c, 0x03, 0x11, 0x22, 0x33, 0x44}));
    // New format: PKESK (0xc1) with a one-byte length, version 3; a v6 one (RFC 9580).
    CHECK(looks({0xc1, 0x5e, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55}));
    CHECK(looks({0xc1, 0x5e, 0x06, 0x11, 0x22, 0x33, 0x44, 0x55}));
    // SKESK v4 (old 0x8c, new 0xc3).
    CHECK(looks({0x8c, 0x0d, 0x04, 0x09, 0x03, 0x08, 0x00}));
    CHECK(looks({0xc3, 0x0d, 0x04, 0x09, 0x03, 0x08, 0x00}));
    // Compressed data with an indeterminate length (old format 0xa3), ZLIB; new format, ZIP.
    CHECK(looks({0xa3, 0x02, 0x78, 0x9c}));
    CHECK(looks({0xc8, 0x20, 0x01, 0x00}));
    // Literal data, binary.
    CHECK(looks({0xcb, 0x10, 'b', 0x00, 0, 0, 0, 0}));
    CHECK(looks({0xac, 0x10, 'b', 0x00, 0, 0, 0, 0}));
    // Encrypted data: SED (old 0xa4 and new 0xc9), SEIPD v1 with a partial length, AEAD (tag 20).
    CHECK(looks({0xa4, 0x20, 0xde, 0xad}));
    CHECK(looks({0xc9, 0x2b, 0xde, 0xad}));
    CHECK(looks({0xd2, 0xe0, 0x01, 0xde}));
    CHECK(looks({0xd4, 0x40, 0x01, 0x09}));
    // A five-byte new-format length: the version comes after it.
    CHECK(looks({0xd2, 0xff, 0x00, 0x01, 0x00, 0x00, 0x01}));

    // Not a message's first packet, or a wrong first body byte.
    CHECK_FALSE(looks({0xc1, 0x5e, 0x04, 0x11}));  // PKESK version 4 does not exist
    CHECK_FALSE(looks({0xc1, 0x05, 0x03, 0x11}));  // PKESK far too short to hold a key
    CHECK_FALSE(looks({0xc1, 0xe0, 0x03, 0x11}));  // a session key with a partial length
    CHECK_FALSE(looks({0x87, 0x03, 0x11}));        // ... or an indeterminate one
    CHECK_FALSE(looks({0xc8, 0x20, 0x07}));        // compression algorithm 7
    CHECK_FALSE(looks({0xcb, 0x10, 'x'}));         // literal format 'x'
    CHECK_FALSE(looks({0xd2, 0x20, 0x03}));        // SEIPD version 3
    CHECK_FALSE(looks({0xc6, 0x20, 0x04}));        // a public key (tag 6): not a message
    CHECK_FALSE(looks({0x99, 0x01, 0x0d, 0x04}));  // an exported key (old-format tag 6)
    CHECK_FALSE(looks({0xc9, 0x00}));              // an empty encrypted packet
    // Other formats' magics, text, zeros.
    CHECK_FALSE(looks_like_openpgp(gpg_test_bytes("QFI\xfb\x00\x00\x00\x03")));
    CHECK_FALSE(looks_like_openpgp(gpg_test_bytes("KDMV\x01\x00\x00\x00")));
    CHECK_FALSE(looks_like_openpgp(gpg_test_bytes("vhdxfile")));
    CHECK_FALSE(looks_like_openpgp(gpg_test_bytes("HSDKENC\0")));
    CHECK_FALSE(looks_like_openpgp(Bytes(64)));
    CHECK_FALSE(looks({0xeb, 0x63, 0x90}));  // an MBR's jump
    // Too short to tell.
    CHECK_FALSE(looks_like_openpgp({}));
    CHECK_FALSE(looks({0x85}));
    CHECK_FALSE(looks({0x85, 0x01, 0x8c}));
    CHECK_FALSE(looks({0xd2, 0xff, 0x00, 0x01}));
}

// ---- interoperation with gpg ------------------------------------------------------------------------

TEST_CASE("gpg: our encryption and decryption round trip; outputs are atomic, binary and the plaintext 0600") {
    GpgTestDir dir;
    const auto home = dir.make_home("a");
    const auto fpr = dir.make_key(home, "Alice <alice@example.invalid>");
    const auto opts = gpg_test_options(home);

    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{100000}}) {
        CAPTURE(size);
        const auto plain = hypersdk::test::pattern(size, 11);
        const auto in = dir.path("plain");
        gpg_test_write(in, plain);
        auto enc = gpg_encrypt_file({"alice@example.invalid"}, in, dir.path("msg.gpg"), opts);
        REQUIRE_MESSAGE(enc.has_value(), enc.error().message);
        const auto msg = gpg_test_read(dir.path("msg.gpg"));
        REQUIRE(msg.size() > size);
        CHECK(looks_like_openpgp(msg));
        CHECK((std::to_integer<unsigned>(msg[0]) & 0x80U) != 0);  // a binary packet, not armor

        auto dec = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), opts);
        REQUIRE_MESSAGE(dec.has_value(), dec.error().message);
        CHECK(gpg_test_read(dir.path("out")) == plain);
        struct stat st {};
        REQUIRE(::stat(dir.path("out").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    // By key ID and by fingerprint, too.
    auto by_fpr = gpg_encrypt_file({fpr}, dir.path("plain"), dir.path("msg2.gpg"), opts);
    REQUIRE_MESSAGE(by_fpr.has_value(), by_fpr.error().message);
    auto by_id = gpg_encrypt_file({"0x" + fpr.substr(fpr.size() - 16)}, dir.path("plain"), dir.path("msg3.gpg"), opts);
    REQUIRE_MESSAGE(by_id.has_value(), by_id.error().message);
    auto dec = gpg_decrypt_file(dir.path("msg3.gpg"), dir.path("out3"), opts);
    REQUIRE_MESSAGE(dec.has_value(), dec.error().message);
    CHECK(gpg_test_read(dir.path("out3")) == gpg_test_read(dir.path("plain")));
    CHECK(dir.temporaries() == 0);
}

TEST_CASE("gpg: gpg decrypts what we encrypt, and we decrypt what gpg encrypts (binary and armored)") {
    GpgTestDir dir;
    const auto home = dir.make_home("a");
    dir.make_key(home, "Alice <alice@example.invalid>");
    const auto opts = gpg_test_options(home);
    const auto plain = hypersdk::test::pattern(300000, 12);
    gpg_test_write(dir.path("plain"), plain);

    SUBCASE("ours to gpg") {
        auto enc = gpg_encrypt_file({"alice@example.invalid"}, dir.path("plain"), dir.path("msg.gpg"), opts);
        REQUIRE_MESSAGE(enc.has_value(), enc.error().message);
        INFO(dir.log());
        REQUIRE(dir.gpg(home, {"--output", dir.path("by-gpg"), "--decrypt", dir.path("msg.gpg")}) == 0);
        CHECK(gpg_test_read(dir.path("by-gpg")) == plain);
    }
    SUBCASE("gpg to ours") {
        for (const bool armor : {false, true}) {
            CAPTURE(armor);
            std::vector<std::string> args{"--trust-model", "always", "--recipient", "alice@example.invalid", "--output",
                                          dir.path("msg.gpg")};
            if (armor) args.push_back("--armor");
            args.insert(args.end(), {"--encrypt", dir.path("plain")});
            INFO(dir.log());
            REQUIRE(dir.gpg(home, args) == 0);
            CHECK(looks_like_openpgp(gpg_test_read(dir.path("msg.gpg"))));
            auto dec = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), opts);
            REQUIRE_MESSAGE(dec.has_value(), dec.error().message);
            CHECK(gpg_test_read(dir.path("out")) == plain);
        }
    }
    CHECK(dir.temporaries() == 0);
}

TEST_CASE("gpg: a message for two recipients opens with either key alone") {
    GpgTestDir dir;
    const auto home_a = dir.make_home("a");
    const auto home_b = dir.make_home("b");
    const auto fpr_a = dir.make_key(home_a, "Alice <alice@example.invalid>");
    const auto fpr_b = dir.make_key(home_b, "Bob <bob@example.invalid>");
    dir.share_public_key(home_b, home_a, fpr_b);  // Alice's home: her key pair and Bob's public key
    const auto opts_a = gpg_test_options(home_a);
    const auto plain = hypersdk::test::pattern(70000, 13);
    gpg_test_write(dir.path("plain"), plain);

    // Bob's key is not trusted in Alice's home (not signed, no ownertrust): always-trust takes it.
    const std::vector<std::string> both{"alice@example.invalid", "bob@example.invalid"};
    auto fprs = gpg_resolve_recipients(both, opts_a);
    REQUIRE_MESSAGE(fprs.has_value(), fprs.error().message);
    CHECK(fprs.value() == std::vector<std::string>{fpr_a, fpr_b});

    auto enc = gpg_encrypt_file(both, dir.path("plain"), dir.path("msg.gpg"), opts_a);
    REQUIRE_MESSAGE(enc.has_value(), enc.error().message);
    for (const auto &home : {home_a, home_b}) {
        CAPTURE(home);
        auto dec = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), gpg_test_options(home));
        REQUIRE_MESSAGE(dec.has_value(), dec.error().message);
        CHECK(gpg_test_read(dir.path("out")) == plain);
        ::unlink(dir.path("out").c_str());
        INFO(dir.log());
        REQUIRE(dir.gpg(home, {"--output", dir.path("by-gpg"), "--decrypt", dir.path("msg.gpg")}) == 0);
        CHECK(gpg_test_read(dir.path("by-gpg")) == plain);
    }
    // gpg lists both recipients' encryption subkeys.
    INFO(dir.log());
    REQUIRE(dir.gpg(home_b, {"--list-packets", dir.path("msg.gpg")}, dir.path("packets")) == 0);
    const auto packets = gpg_test_read(dir.path("packets"));
    const std::string text(reinterpret_cast<const char *>(packets.data()), packets.size());
    std::size_t pkesk = 0;
    for (auto at = text.find(":pubkey enc packet:"); at != std::string::npos; at = text.find(":pubkey enc packet:", at + 1)) ++pkesk;
    CHECK(pkesk == 2);
}

TEST_CASE("gpg: recipients resolve to exactly one usable key, or fail naming the recipient") {
    GpgTestDir dir;
    const auto home = dir.make_home("a");
    const auto fpr_1 = dir.make_key(home, "One <one@example.invalid>");
    const auto fpr_2 = dir.make_key(home, "Two <two@example.invalid>");
    const auto opts = gpg_test_options(home);
    gpg_test_write(dir.path("plain"), gpg_test_bytes("hello"));

    SUBCASE("an unknown recipient") {
        auto r = gpg_encrypt_file({"one@example.invalid", "nobody@example.invalid"}, dir.path("plain"), dir.path("msg.gpg"), opts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::invalid_argument);
        CHECK(r.error().message.find("nobody@example.invalid") != std::string::npos);
        CHECK_FALSE(gpg_test_exists(dir.path("msg.gpg")));
        auto s = gpg_resolve_recipients({"nobody@example.invalid"}, opts);
        REQUIRE_FALSE(s.has_value());
        CHECK(s.error().code == Errc::invalid_argument);
        CHECK(s.error().message.find("nobody@example.invalid") != std::string::npos);
    }
    SUBCASE("an ambiguous recipient") {
        auto r = gpg_encrypt_file({"example.invalid"}, dir.path("plain"), dir.path("msg.gpg"), opts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::invalid_argument);
        CHECK(r.error().message.find("ambiguous") != std::string::npos);
        CHECK(r.error().message.find(fpr_1) != std::string::npos);
        CHECK(r.error().message.find(fpr_2) != std::string::npos);
        CHECK_FALSE(gpg_test_exists(dir.path("msg.gpg")));
    }
    SUBCASE("no recipients, a blank one") {
        auto r = gpg_encrypt_file({}, dir.path("plain"), dir.path("msg.gpg"), opts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::invalid_argument);
        auto s = gpg_resolve_recipients({" "}, opts);
        REQUIRE_FALSE(s.has_value());
        CHECK(s.error().code == Errc::invalid_argument);
        CHECK_FALSE(gpg_test_exists(dir.path("msg.gpg")));
    }
    SUBCASE("a revoked key") {
        // gpg's stored revocation certificate, with the ":" that guards it against a careless import removed.
        auto cert = gpg_test_read(dir.path("a/openpgp-revocs.d/" + fpr_2 + ".rev"));
        std::string text(reinterpret_cast<const char *>(cert.data()), cert.size());
        const auto guard = text.find(":-----BEGIN PGP PUBLIC KEY BLOCK-----");
        REQUIRE(guard != std::string::npos);
        text.erase(guard, 1);
        gpg_test_write(dir.path("revocation"), gpg_test_bytes(text));
        INFO(dir.log());
        REQUIRE(dir.gpg(home, {"--import", dir.path("revocation")}) == 0);
        auto r = gpg_resolve_recipients({"two@example.invalid"}, opts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::invalid_argument);
        CHECK(r.error().message.find("two@example.invalid") != std::string::npos);
        CHECK(r.error().message.find("revoked") != std::string::npos);
    }
    SUBCASE("the same key twice, by user ID, key ID and subkey, counts once; fingerprints come back") {
        // The encryption subkey's fingerprint: the second "fpr:" record of the listing.
        INFO(dir.log());
        REQUIRE(dir.gpg(home, {"--with-colons", "--list-keys", fpr_1}, dir.path("listing")) == 0);
        const auto bytes = gpg_test_read(dir.path("listing"));
        const std::string text(reinterpret_cast<const char *>(bytes.data()), bytes.size());
        const auto second = text.find("\nfpr:", text.find("\nfpr:") + 1);
        REQUIRE(second != std::string::npos);
        const auto start = text.find_first_not_of(':', second + 5);
        const std::string sub_fpr = text.substr(start, text.find(':', start) - start);
        REQUIRE(sub_fpr.size() == 40);
        REQUIRE(sub_fpr != fpr_1);

        auto r = gpg_resolve_recipients({"one@example.invalid", fpr_1.substr(24), sub_fpr, "two@example.invalid"}, opts);
        REQUIRE_MESSAGE(r.has_value(), r.error().message);
        CHECK(r.value() == std::vector<std::string>{fpr_1, fpr_2});
        // "FPR!" (that very subkey) is passed to gpg as given.
        auto enc = gpg_encrypt_file({sub_fpr + "!"}, dir.path("plain"), dir.path("msg.gpg"), opts);
        REQUIRE_MESSAGE(enc.has_value(), enc.error().message);
        auto dec = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), opts);
        REQUIRE_MESSAGE(dec.has_value(), dec.error().message);
        CHECK(gpg_test_read(dir.path("out")) == gpg_test_bytes("hello"));
    }
    CHECK(dir.temporaries() == 0);
}

TEST_CASE("gpg: decryption without the secret key fails with auth_failed and writes nothing") {
    GpgTestDir dir;
    const auto home_a = dir.make_home("a");
    const auto home_b = dir.make_home("b");
    const auto fpr_a = dir.make_key(home_a, "Alice <alice@example.invalid>");
    dir.make_key(home_b, "Bob <bob@example.invalid>");
    gpg_test_write(dir.path("plain"), hypersdk::test::pattern(5000, 14));
    auto enc = gpg_encrypt_file({"alice@example.invalid"}, dir.path("plain"), dir.path("msg.gpg"), gpg_test_options(home_a));
    REQUIRE_MESSAGE(enc.has_value(), enc.error().message);

    auto dec = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), gpg_test_options(home_b));
    REQUIRE_FALSE(dec.has_value());
    CHECK(dec.error().code == Errc::auth_failed);
    CHECK(dec.error().message.find("no secret key") != std::string::npos);
    CHECK_FALSE(gpg_test_exists(dir.path("out")));

    // An output that was there is left as it was.
    gpg_test_write(dir.path("out"), gpg_test_bytes("old"));
    auto again = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), gpg_test_options(home_b));
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().code == Errc::auth_failed);
    CHECK(gpg_test_read(dir.path("out")) == gpg_test_bytes("old"));

    // Neither a home that is not there, nor a file that is not a message.
    auto missing = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out2"), gpg_test_options(dir.path("nope")));
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == Errc::not_found);
    auto not_pgp = gpg_decrypt_file(dir.path("plain"), dir.path("out2"), gpg_test_options(home_a));
    REQUIRE_FALSE(not_pgp.has_value());
    CHECK(not_pgp.error().code == Errc::invalid_argument);
    // A message that is OpenPGP but not encrypted (a bare literal data packet).
    INFO(dir.log());
    REQUIRE(dir.gpg(home_a, {"--output", dir.path("stored.gpg"), "--store", dir.path("plain")}) == 0);
    CHECK(looks_like_openpgp(gpg_test_read(dir.path("stored.gpg"))));
    auto stored = gpg_decrypt_file(dir.path("stored.gpg"), dir.path("out2"), gpg_test_options(home_a));
    REQUIRE_FALSE(stored.has_value());
    CHECK(stored.error().code == Errc::invalid_argument);
    auto no_input = gpg_decrypt_file(dir.path("absent.gpg"), dir.path("out2"), gpg_test_options(home_a));
    REQUIRE_FALSE(no_input.has_value());
    CHECK(no_input.error().code == Errc::not_found);
    CHECK_FALSE(gpg_test_exists(dir.path("out2")));
    CHECK(dir.temporaries() == 0);
}

TEST_CASE("gpg: a changed or truncated message fails and writes nothing") {
    GpgTestDir dir;
    const auto home = dir.make_home("a");
    dir.make_key(home, "Alice <alice@example.invalid>");
    const auto opts = gpg_test_options(home);
    const auto plain = hypersdk::test::pattern(200000, 15);
    gpg_test_write(dir.path("plain"), plain);

    // Random data does not compress; and gpg writes it uncompressed when asked: the two cases
    // fail differently in gpg (a broken inflate stream; the MDC), both must be caught.
    for (const bool compressed : {true, false}) {
        CAPTURE(compressed);
        std::vector<std::string> args{"--trust-model", "always", "--recipient", "alice@example.invalid", "--output", dir.path("msg.gpg")};
        if (!compressed) args.insert(args.end(), {"--compress-algo", "none"});
        args.insert(args.end(), {"--encrypt", dir.path("plain")});
        INFO(dir.log());
        REQUIRE(dir.gpg(home, args) == 0);
        auto msg = gpg_test_read(dir.path("msg.gpg"));
        REQUIRE(msg.size() > 100000);

        auto changed = msg;
        changed[changed.size() / 2] ^= std::byte{0x01};  // well inside the encrypted data packet
        gpg_test_write(dir.path("changed.gpg"), changed);
        auto r = gpg_decrypt_file(dir.path("changed.gpg"), dir.path("out"), opts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::corrupt_image);
        CHECK_FALSE(gpg_test_exists(dir.path("out")));

        const Bytes truncated(msg.begin(), msg.end() - 1000);
        gpg_test_write(dir.path("truncated.gpg"), truncated);
        auto t = gpg_decrypt_file(dir.path("truncated.gpg"), dir.path("out"), opts);
        REQUIRE_FALSE(t.has_value());
        CHECK(t.error().code == Errc::corrupt_image);
        CHECK_FALSE(gpg_test_exists(dir.path("out")));

        // A damaged session key packet (the first packet).
        auto session = msg;
        for (std::size_t i = 20; i < 60; ++i) session[i] ^= std::byte{0x5a};
        gpg_test_write(dir.path("session.gpg"), session);
        auto k = gpg_decrypt_file(dir.path("session.gpg"), dir.path("out"), opts);
        REQUIRE_FALSE(k.has_value());
        CHECK((k.error().code == Errc::corrupt_image || k.error().code == Errc::auth_failed));
        CHECK_FALSE(gpg_test_exists(dir.path("out")));

        // The message itself is fine.
        auto ok = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), opts);
        REQUIRE_MESSAGE(ok.has_value(), ok.error().message);
        CHECK(gpg_test_read(dir.path("out")) == plain);
        ::unlink(dir.path("out").c_str());
    }
    CHECK(dir.temporaries() == 0);
}

TEST_CASE("gpg: a message without integrity protection (no MDC) is refused") {
    GpgTestDir dir;
    const auto home = dir.make_home("a");
    dir.make_key(home, "Alice <alice@example.invalid>");
    gpg_test_write(dir.path("plain"), hypersdk::test::pattern(4000, 16));
    // GnuPG 2.2 still writes one with --rfc2440 (warning that it is dangerous): a symmetrically
    // encrypted data packet (tag 9) instead of an integrity-protected one (tag 18).
    INFO(dir.log());
    REQUIRE(dir.gpg(home, {"--rfc2440", "--cipher-algo", "AES256", "--trust-model", "always", "--recipient", "alice@example.invalid",
                           "--output", dir.path("nomdc.gpg"), "--encrypt", dir.path("plain")}) == 0);
    (void)dir.gpg(home, {"--list-packets", dir.path("nomdc.gpg")}, dir.path("packets"));  // fails: gpg will not decrypt it either
    const auto packets = gpg_test_read(dir.path("packets"));
    const std::string text(reinterpret_cast<const char *>(packets.data()), packets.size());
    REQUIRE(text.find(":encrypted data packet:") != std::string::npos);
    REQUIRE(text.find("mdc_method") == std::string::npos);
    CHECK(looks_like_openpgp(gpg_test_read(dir.path("nomdc.gpg"))));

    auto r = gpg_decrypt_file(dir.path("nomdc.gpg"), dir.path("out"), gpg_test_options(home));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::corrupt_image);
    CHECK(r.error().message.find("integrity") != std::string::npos);
    CHECK_FALSE(gpg_test_exists(dir.path("out")));
    CHECK(dir.temporaries() == 0);
}

TEST_CASE("gpg: overwrite false keeps an existing output (conflict); other outputs are refused") {
    GpgTestDir dir;
    const auto home = dir.make_home("a");
    dir.make_key(home, "Alice <alice@example.invalid>");
    const auto opts = gpg_test_options(home);
    gpg_test_write(dir.path("plain"), gpg_test_bytes("secret"));
    REQUIRE(gpg_encrypt_file({"alice@example.invalid"}, dir.path("plain"), dir.path("msg.gpg"), opts).has_value());

    gpg_test_write(dir.path("taken"), gpg_test_bytes("keep me"));
    auto enc = gpg_encrypt_file({"alice@example.invalid"}, dir.path("plain"), dir.path("taken"), opts, false);
    REQUIRE_FALSE(enc.has_value());
    CHECK(enc.error().code == Errc::conflict);
    auto dec = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("taken"), opts, false);
    REQUIRE_FALSE(dec.has_value());
    CHECK(dec.error().code == Errc::conflict);
    CHECK(gpg_test_read(dir.path("taken")) == gpg_test_bytes("keep me"));

    // With overwrite (the default) it is replaced; without, a new name is fine.
    REQUIRE(gpg_decrypt_file(dir.path("msg.gpg"), dir.path("taken"), opts).has_value());
    CHECK(gpg_test_read(dir.path("taken")) == gpg_test_bytes("secret"));
    REQUIRE(gpg_decrypt_file(dir.path("msg.gpg"), dir.path("fresh"), opts, false).has_value());
    CHECK(gpg_test_read(dir.path("fresh")) == gpg_test_bytes("secret"));

    // A symbolic link is followed: the file it names is replaced, the link stays.
    REQUIRE(::symlink("taken", dir.path("link").c_str()) == 0);
    REQUIRE(gpg_encrypt_file({"alice@example.invalid"}, dir.path("fresh"), dir.path("link"), opts).has_value());
    struct stat st {};
    REQUIRE(::lstat(dir.path("link").c_str(), &st) == 0);
    CHECK(S_ISLNK(st.st_mode));
    CHECK(looks_like_openpgp(gpg_test_read(dir.path("taken"))));

    auto folder = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("a"), opts);
    REQUIRE_FALSE(folder.has_value());
    CHECK(folder.error().code == Errc::invalid_argument);
    auto device = gpg_encrypt_file({"alice@example.invalid"}, dir.path("plain"), "/dev/null", opts);
    REQUIRE_FALSE(device.has_value());
    CHECK(device.error().code == Errc::unsupported);
    CHECK(dir.temporaries() == 0);
}

TEST_CASE("gpg: stream encryption of 3 MiB round trips; sink failures and cancellation end it") {
    GpgTestDir dir;
    const auto home = dir.make_home("a");
    dir.make_key(home, "Alice <alice@example.invalid>");
    const auto opts = gpg_test_options(home);
    const auto plain = hypersdk::test::pattern(3 * 1024 * 1024 + 123, 17);

    // Hands out the plaintext in pieces of odd sizes.
    std::size_t at = 0;
    std::size_t calls = 0;
    auto reader = [&](std::span<std::byte> out) -> Result<std::size_t> {
        const std::size_t want = std::min<std::size_t>({out.size(), plain.size() - at, 1000 + (calls++ % 7) * 4999});
        std::copy_n(plain.begin() + static_cast<std::ptrdiff_t>(at), want, out.begin());
        at += want;
        return want;
    };

    SUBCASE("round trip") {
        Bytes msg;
        auto r = gpg_encrypt_stream(
            {"alice@example.invalid"}, reader,
            [&](std::span<const std::byte> b) -> Result<void> {
                msg.insert(msg.end(), b.begin(), b.end());
                return success();
            },
            opts);
        REQUIRE_MESSAGE(r.has_value(), r.error().message);
        CHECK(at == plain.size());
        CHECK(looks_like_openpgp(msg));
        gpg_test_write(dir.path("msg.gpg"), msg);
        auto dec = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), opts);
        REQUIRE_MESSAGE(dec.has_value(), dec.error().message);
        CHECK(gpg_test_read(dir.path("out")) == plain);
        INFO(dir.log());
        REQUIRE(dir.gpg(home, {"--output", dir.path("by-gpg"), "--decrypt", dir.path("msg.gpg")}) == 0);
        CHECK(gpg_test_read(dir.path("by-gpg")) == plain);
    }
    SUBCASE("the sink's error is the call's") {
        std::size_t sunk = 0;
        auto r = gpg_encrypt_stream(
            {"alice@example.invalid"}, reader,
            [&](std::span<const std::byte> b) -> Result<void> {
                if (sunk > 100000) return fail(Errc::no_space, "the sink is full");
                sunk += b.size();
                return success();
            },
            opts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::no_space);
        CHECK(r.error().message == "the sink is full");
    }
    SUBCASE("the reader's error is the call's") {
        auto failing = [&](std::span<std::byte> out) -> Result<std::size_t> {
            if (at > 500000) return fail(Errc::io_error, "the source broke");
            return reader(out);
        };
        auto r = gpg_encrypt_stream(
            {"alice@example.invalid"}, failing, [](std::span<const std::byte>) -> Result<void> { return success(); }, opts);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::io_error);
        CHECK(r.error().message == "the source broke");
    }
    SUBCASE("cancelled while it runs") {
        GpgOptions cancellable = opts;
        cancellable.cancel = CancelToken{};  // copies of a token share its flag: a token of its own
        auto cancelling = [&](std::span<std::byte> out) -> Result<std::size_t> {
            if (at > 1000000) cancellable.cancel.cancel();
            return reader(out);
        };
        auto r = gpg_encrypt_stream(
            {"alice@example.invalid"}, cancelling, [](std::span<const std::byte>) -> Result<void> { return success(); }, cancellable);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::cancelled);
        CHECK(at < plain.size());
    }
    SUBCASE("cancelled before, and files") {
        GpgOptions cancelled = opts;
        cancelled.cancel = CancelToken{};
        cancelled.cancel.cancel();
        gpg_test_write(dir.path("plain"), plain);
        auto r = gpg_encrypt_file({"alice@example.invalid"}, dir.path("plain"), dir.path("msg.gpg"), cancelled);
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::cancelled);
        CHECK_FALSE(gpg_test_exists(dir.path("msg.gpg")));
        REQUIRE(gpg_encrypt_file({"alice@example.invalid"}, dir.path("plain"), dir.path("msg.gpg"), opts).has_value());
        auto d = gpg_decrypt_file(dir.path("msg.gpg"), dir.path("out"), cancelled);
        REQUIRE_FALSE(d.has_value());
        CHECK(d.error().code == Errc::cancelled);
        CHECK_FALSE(gpg_test_exists(dir.path("out")));
    }
    CHECK(dir.temporaries() == 0);
}

}  // namespace gpg_test
