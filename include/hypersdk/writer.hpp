// Writing a disk image from your own data (a backup's changed blocks, a network stream, a
// generator), in any format hsdk writes, with the same zero detection, parallel compression,
// direct I/O and atomic publication as convert().
#pragma once

#include <hypersdk/convert.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace hypersdk {

struct ImageWriterOptions {
    std::string format;            // raw, qcow2, vmdk, vhd (vpc), vhdx, vdi
    FormatOptions format_options;  // as for convert's -o
    bool compress = false;
    unsigned threads = 0;          // zero detection and compression workers; 0 = one per core
    bool direct_io = true;
    bool overwrite = true;
};

class ImageWriter {
public:
    // Creates `path` (under a temporary name until close()) for a disk of `virtual_size` bytes.
    static Result<std::unique_ptr<ImageWriter>> create(const std::string &path, std::uint64_t virtual_size,
                                                       const ImageWriterOptions &options);
    virtual ~ImageWriter() = default;  // without close(): nothing is left behind

    // Streaming writers take pieces in ascending order (gaps read as zeros). Random-access writers
    // (raw) take them in any order; see random_access().
    virtual Result<void> write(std::uint64_t offset, std::span<const std::byte> data) = 0;
    [[nodiscard]] virtual bool random_access() const noexcept = 0;
    [[nodiscard]] virtual std::uint64_t virtual_size() const noexcept = 0;
    // Flushes, writes the format's metadata, fsyncs and renames the image into place.
    virtual Result<void> close() = 0;
};

}  // namespace hypersdk
