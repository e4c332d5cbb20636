// libFuzzer harness: the input is an image file of FUZZ_FORMAT. Opening it, walking its whole
// allocation map and reading its data must never crash, hang or allocate without bound; errors
// are fine.
#include <hypersdk/disk.hpp>

#include <cstdlib>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    // A real file: open_image() resolves the path (realpath) to detect backing-chain loops, which
    // fails for the "/memfd:... (deleted)" target of a /proc/self/fd link.
    char name[] = "/tmp/hsdk-fuzz-image-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) return 0;
    const std::string path = name;
    if (::write(fd, data, size) != static_cast<ssize_t>(size)) {
        ::close(fd);
        ::unlink(name);
        return 0;
    }
    hypersdk::OpenOptions options;
    options.format = FUZZ_FORMAT;
    options.open_backing = false;  // a fuzzed backing name must not reach the file system
    auto image = hypersdk::open_image(path, options);
    if (image) {
        auto &dev = *image.value();
        auto runs = dev.block_status(0, dev.virtual_size());
        if (runs) {
            std::vector<std::byte> buf;
            std::uint64_t budget = 4 << 20;  // read at most 4 MiB per input
            for (const auto &e : runs.value()) {
                if (e.kind != hypersdk::ExtentKind::data) continue;
                const std::uint64_t n = std::min<std::uint64_t>(e.length, std::min<std::uint64_t>(budget, 1 << 20));
                if (n == 0) break;
                buf.resize(static_cast<std::size_t>(n));
                (void)dev.read(e.offset, buf);
                budget -= n;
            }
        }
        (void)hypersdk::to_json(dev.info());
    }
    ::close(fd);
    ::unlink(name);
    return 0;
}
