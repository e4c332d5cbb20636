// Digests of files and of byte ranges of files (OVA members), streamed through core's Digest.
#include <hypersdk/hash.hpp>

#include "io/digest_range.hpp"
#include "io/file.hpp"

#include <fcntl.h>

#include <algorithm>
#include <vector>

namespace hypersdk {

Result<std::string> range_digest_hex(const io::File &file, std::uint64_t offset, std::uint64_t length,
                                     DigestAlgorithm algorithm, const CancelToken &cancel) {
    ::posix_fadvise(file.fd(), static_cast<off_t>(offset), static_cast<off_t>(length), POSIX_FADV_SEQUENTIAL);
    Digest d(algorithm);
    std::vector<std::byte> buf(1 << 20);
    while (length > 0) {
        HSDK_TRYV(cancel.check());
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), length));
        HSDK_TRYV(file.read_exact(offset, std::span<std::byte>(buf.data(), n)));
        d.update(std::span<const std::byte>(buf.data(), n));
        offset += n;
        length -= n;
    }
    auto raw = d.finish();
    return to_hex(raw);
}

Result<std::string> file_digest_hex(const std::string &path, DigestAlgorithm algorithm, const CancelToken &cancel) {
    HSDK_TRY(auto file, io::File::open_read(path));
    HSDK_TRY(auto size, file.size());
    return range_digest_hex(file, 0, size, algorithm, cancel);
}

}  // namespace hypersdk
