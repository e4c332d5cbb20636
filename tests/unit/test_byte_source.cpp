// Byte sources: local files (holes as zero runs), windows, and where the names an image writes lead
// when the image sits behind a URL (the HTTP transfers themselves are tested against a loopback
// server in tests/integration/test_http_sources.py).
#include <doctest/doctest.h>

#include <hypersdk/byte_source.hpp>

#include "io/http_source.hpp"
#include "scratch.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

using namespace hypersdk;

namespace {

std::string write_text(const std::string &name, const std::string &bytes) {
    const std::string path = test::work(name);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path;
}

}  // namespace

TEST_CASE("a file source reads exactly, reports short reads past its end as corrupt, and maps holes") {
    const std::string path = test::work("bs-sparse.bin");
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_CREAT | O_RDWR, 0644);
    REQUIRE(fd >= 0);
    const std::string data(4096, 'x');
    REQUIRE(::pwrite(fd, data.data(), data.size(), 1 << 20) == static_cast<ssize_t>(data.size()));
    REQUIRE(::ftruncate(fd, 4 << 20) == 0);
    ::close(fd);
    auto s = open_byte_source(path);
    REQUIRE(s);
    auto &src = *s.value();
    CHECK(src.size() == (4u << 20));
    std::vector<std::byte> buf(16);
    REQUIRE(src.read_exact((1 << 20) + 8, buf));
    CHECK(buf[0] == std::byte{'x'});
    auto past = src.read_exact((4 << 20) - 8, buf);
    REQUIRE_FALSE(past);
    CHECK(past.error().code == Errc::corrupt_image);
    auto runs = src.allocation(0, 4 << 20);
    REQUIRE(runs);
    std::uint64_t data_bytes = 0, pos = 0;
    for (const auto &r : runs.value()) {
        CHECK(r.offset == pos);
        pos += r.length;
        if (r.data) data_bytes += r.length;
    }
    CHECK(pos == (4u << 20));
    CHECK(data_bytes >= 4096);
    CHECK(data_bytes < (4u << 20));  // every file system of the test machines keeps holes
}

TEST_CASE("a window reads its range only and refuses references") {
    const auto path = write_text("bs-window.bin", "0123456789abcdef");
    auto base = open_byte_source(path);
    REQUIRE(base);
    auto w = byte_source_window(base.value(), 4, 8, "pkg.ova/disk.vmdk");
    REQUIRE(w);
    CHECK(w.value()->size() == 8);
    CHECK(w.value()->name() == "pkg.ova/disk.vmdk");
    std::vector<std::byte> buf(8);
    REQUIRE(w.value()->read_exact(0, buf));
    CHECK(std::string(reinterpret_cast<const char *>(buf.data()), buf.size()) == "456789ab");
    auto got = w.value()->read_some(6, buf);
    REQUIRE(got);
    CHECK(got.value() == 2);
    auto ref = w.value()->open_reference("other.vmdk", false, "extent file");
    REQUIRE_FALSE(ref);
    CHECK(ref.error().code == Errc::permission_denied);
    CHECK_FALSE(byte_source_window(base.value(), 10, 8, "too long"));
}

TEST_CASE("a file source follows references only inside its folder") {
    write_text("bs-neighbour.bin", "n");
    const auto path = write_text("bs-image.bin", "i");
    auto s = open_byte_source(path);
    REQUIRE(s);
    auto n = s.value()->open_reference("bs-neighbour.bin", false, "backing file");
    REQUIRE(n);
    CHECK(n.value()->size() == 1);
    auto abs = s.value()->open_reference("/etc/passwd", false, "backing file");
    REQUIRE_FALSE(abs);
    CHECK(abs.error().code == Errc::permission_denied);
    auto up = s.value()->open_reference("../x", false, "backing file");
    REQUIRE_FALSE(up);
    CHECK(up.error().code == Errc::permission_denied);
}

TEST_CASE("names an image behind a URL writes resolve inside the URL's folder") {
    using io::resolve_url_reference;
    const std::string url = "https://h.example:8443/a/b/disk.vmdk?sv=1&sig=abc";
    auto flat = resolve_url_reference(url, "disk-flat.vmdk", false, "extent file");
    REQUIRE(flat);
    CHECK(flat.value() == "https://h.example:8443/a/b/disk-flat.vmdk?sv=1&sig=abc");  // the signature carries over
    auto spaced = resolve_url_reference("http://h/x/d.qcow2", "my base#1.qcow2", false, "backing file");
    REQUIRE(spaced);
    CHECK(spaced.value() == "http://h/x/my%20base%231.qcow2");
    for (const char *bad : {"/etc/passwd", "../other/base.qcow2", "http://elsewhere/base.qcow2", "json:{}"}) {
        auto r = resolve_url_reference(url, bad, false, "backing file");
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::permission_denied);
    }
    auto allowed = resolve_url_reference(url, "http://elsewhere/base.qcow2", true, "backing file");
    REQUIRE(allowed);
    CHECK(allowed.value() == "http://elsewhere/base.qcow2");
    auto rooted = resolve_url_reference(url, "/top/base.qcow2", true, "backing file");
    REQUIRE(rooted);
    CHECK(rooted.value() == "https://h.example:8443/top/base.qcow2?sv=1&sig=abc");
}

TEST_CASE("credentials never travel over plain http unless allowed and a closed port is a network error") {
    HttpSourceOptions o;
    o.headers = {"Authorization: Bearer x"};
    auto r = open_byte_source("http://127.0.0.1:9/disk.qcow2", o);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);
    auto u = open_byte_source("http://user:pw@127.0.0.1:9/disk.qcow2");
    REQUIRE_FALSE(u);
    CHECK(u.error().code == Errc::invalid_argument);
    CHECK(u.error().message.find("pw") == std::string::npos);
    HttpSourceOptions quick;
    quick.max_attempts = 1;
    auto closed = open_byte_source("http://127.0.0.1:9/disk.qcow2", quick);
    REQUIRE_FALSE(closed);
    CHECK(closed.error().code == Errc::network_error);
    CHECK(is_url("HTTPS://x/y"));
    CHECK_FALSE(is_url("/tmp/https://x"));
    CHECK(display_location("https://u:p@h/d.vhd?sig=s") == "https://h/d.vhd");
}
