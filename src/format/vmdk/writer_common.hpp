// What the VMDK writers share: option parsing, the descriptor they embed or write, and an appending
// output that turns many small writes into few large ones.
#pragma once

#include "format/layer.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace hypersdk::format::vmdk {

enum class Subformat { monolithic_sparse, monolithic_flat, stream_optimized };

struct WriterSettings {
    Subformat subformat = Subformat::monolithic_sparse;
    std::string adapter_type = "lsilogic";
    std::string hw_version = "4";
    int compression_level = 4;  // libdeflate 4: within ~2% of zlib-6's ratio, 1.5x faster than its level 6
    std::uint64_t capacity_sectors = 0;  // the virtual size rounded up to whole sectors
};

inline constexpr std::uint64_t writer_grain_sectors = 128;  // 64 KiB grains, as VMware and qemu write
inline constexpr std::uint64_t writer_grain_bytes = writer_grain_sectors * 512;

// Takes subformat, adapter_type, hwversion and compression_level out of the request (refusing any
// other key) and applies the -c rules.
Result<WriterSettings> parse_writer_settings(const CreateRequest &request);

std::string_view subformat_name(Subformat s) noexcept;

// A descriptor for a new disk with no parent: random CID, the given extent lines, a ddb with adapter
// type, geometry, hardware version and a random uuid.
std::string render_descriptor(const WriterSettings &settings, std::string_view create_type, const std::vector<std::string> &extent_lines);

// An extent line naming `file_name` (quoted; refuses names a descriptor cannot carry).
Result<std::string> extent_line(std::string_view type, std::uint64_t sectors, std::string_view file_name, bool with_offset);

// Appends to a file from a starting offset through a large buffer; the output is one forward stream.
class AppendWriter {
public:
    AppendWriter(io::File *file, std::uint64_t start) : file_(file), flushed_(start) {}
    Result<void> append(std::span<const std::byte> bytes);
    Result<void> append_zeros(std::uint64_t count);
    Result<void> flush();
    [[nodiscard]] std::uint64_t position() const noexcept { return flushed_ + buffer_.size(); }

private:
    static constexpr std::size_t buffer_limit = 4u << 20;
    io::File *file_;
    std::uint64_t flushed_;
    std::vector<std::byte> buffer_;
};

}  // namespace hypersdk::format::vmdk
