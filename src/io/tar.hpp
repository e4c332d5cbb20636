// Reading and writing tar archives (OVA packages): ustar with pax and GNU extensions.
#pragma once

#include "io/file.hpp"

#include <cstdint>
#include <span>
#include <string_view>
#include <string>
#include <vector>

namespace hypersdk::io {

struct TarEntry {
    std::string name;
    std::uint64_t data_offset = 0;
    std::uint64_t size = 0;
    char type = '0';  // '0' regular file, '5' directory
};

struct TarLimits {
    std::size_t max_entries = 100000;
    std::size_t max_name = 4096;
    std::size_t max_extended_header = 1u << 20;
};

// One header block as it stands (before pax or GNU long-name extensions apply).
struct TarHeader {
    std::string name;
    std::uint64_t size = 0;
    char type = '0';
};
// Decodes a 512-byte header block, its checksum checked; `at` (its offset) names it in messages.
Result<TarHeader> parse_tar_header(std::span<const std::byte, 512> block, std::uint64_t at);
// Applies the "len key=value\n" records of a pax extended header: path and size.
Result<void> parse_pax_records(std::string_view data, std::string &path, std::uint64_t &size, bool &has_size, std::uint64_t at);
// Refuses empty, over-long, absolute and climbing ("..") names and names holding NUL.
Result<void> check_tar_name(const std::string &name, std::uint64_t at, const TarLimits &limits);

// Lists a tar archive's entries. Refuses absolute names, ".." components, NUL bytes, links, devices
// and FIFOs (none belongs in an OVA), bad checksums and data running past the end of the file.
Result<std::vector<TarEntry>> list_tar(const File &file, const TarLimits &limits = {});

// Sequential tar writer; sizes >= 8 GiB use the GNU base-256 size field (GNU tar, bsdtar, Python and
// ovftool read it).
class TarWriter {
public:
    explicit TarWriter(File &file) : file_(file) {}
    // Writes the header of a regular file of `size` bytes; then call write() exactly `size` bytes.
    Result<void> begin_file(const std::string &name, std::uint64_t size, std::uint64_t mtime = 0);
    Result<void> write(std::span<const std::byte> data);
    // Pads the current file to a block boundary.
    Result<void> end_file();
    // Two zero blocks and the file's final size.
    Result<void> finish();
    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }

private:
    File &file_;
    std::uint64_t offset_ = 0;
    std::uint64_t remaining_ = 0;
    bool in_file_ = false;
};

// Builds one 512-byte header (exposed for tests).
Result<std::vector<std::byte>> make_tar_header(const std::string &name, std::uint64_t size, std::uint64_t mtime, char type);

}  // namespace hypersdk::io
