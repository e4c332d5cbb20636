// libFuzzer harness for the tar (OVA) reader.
#include "io/tar.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    const int fd = ::memfd_create("fuzz-tar", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (::write(fd, data, size) == static_cast<ssize_t>(size)) {
        auto file = hypersdk::io::File::open_read("/proc/self/fd/" + std::to_string(fd));
        if (file) (void)hypersdk::io::list_tar(file.value());
    }
    ::close(fd);
    return 0;
}
