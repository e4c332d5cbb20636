// libFuzzer harness: the input is an image file of FUZZ_FORMAT. Opening it, walking its whole
// allocation map, reading its data and checking it must never crash, hang or allocate without
// bound; errors are fine.
#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace {

// The input goes to a real file, made afresh and removed for each input, so that both open_image()
// and check_image() can open it by path as a user's image would be.
struct InputFile {
    std::string path;
    bool written = false;
    explicit InputFile(std::span<const std::uint8_t> data) {
        const char *dir = std::getenv("TMPDIR");
        path = std::string(dir && *dir ? dir : "/tmp") + "/hsdk-fuzz-XXXXXX";
        const int fd = ::mkstemp(path.data());
        if (fd < 0) {
            path.clear();
            return;
        }
        written = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
        ::close(fd);
    }
    ~InputFile() {
        if (!path.empty()) ::unlink(path.c_str());
    }
    InputFile(const InputFile &) = delete;
    InputFile &operator=(const InputFile &) = delete;
    [[nodiscard]] bool ok() const { return written; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const InputFile input(std::span<const std::uint8_t>(data, size));
    if (!input.ok()) return 0;
    const std::string &path = input.path;
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
        (void)hypersdk::check_image(path, options);  // the driver's own consistency check too
    }
    return 0;
}
