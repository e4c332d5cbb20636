#include "format/vmdk/writer_common.hpp"

#include "format/vmdk/descriptor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <random>

namespace hypersdk::format::vmdk {
namespace {

std::uint64_t random_u64() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    return rng();
}

// BIOS-style geometry as VMware writes it: 16 heads for IDE, 255 for SCSI adapters, 63 sectors per
// track, cylinders capped at what the adapter can address.
struct Geometry {
    std::uint64_t cylinders, heads, sectors;
};
Geometry geometry_for(const WriterSettings &s) {
    const bool ide = s.adapter_type == "ide";
    const std::uint64_t heads = ide ? 16 : 255, sectors = 63;
    const std::uint64_t cap = ide ? 16383 : 65535;
    return {std::min(cap, s.capacity_sectors / (heads * sectors)), heads, sectors};
}

}  // namespace

std::string_view subformat_name(Subformat s) noexcept {
    switch (s) {
    case Subformat::monolithic_sparse: return "monolithicSparse";
    case Subformat::monolithic_flat: return "monolithicFlat";
    case Subformat::stream_optimized: return "streamOptimized";
    }
    return "?";
}

Result<WriterSettings> parse_writer_settings(const CreateRequest &req) {
    FormatOptions opts = req.options;
    WriterSettings s;
    const auto subformat = take_option(opts, "subformat");
    const auto adapter = take_option(opts, "adapter_type");
    const auto hw = take_option(opts, "hwversion");
    const auto level = take_option(opts, "compression_level");
    HSDK_TRYV(reject_unknown_options(opts, "vmdk"));

    if (subformat) {
        if (*subformat == "monolithicSparse") s.subformat = Subformat::monolithic_sparse;
        else if (*subformat == "monolithicFlat") s.subformat = Subformat::monolithic_flat;
        else if (*subformat == "streamOptimized") s.subformat = Subformat::stream_optimized;
        else if (*subformat == "twoGbMaxExtentSparse" || *subformat == "twoGbMaxExtentFlat")
            return fail_unsupported(fmt::format("writing VMDK subformat '{}' (write monolithicSparse, monolithicFlat or streamOptimized)", *subformat));
        else
            return fail(Errc::invalid_argument, fmt::format("option subformat: unknown VMDK subformat '{}' (monolithicSparse, "
                                                            "monolithicFlat or streamOptimized)", *subformat));
    } else if (req.compress) {
        s.subformat = Subformat::stream_optimized;  // -c alone means the compressed subformat
    }
    if (req.compress && s.subformat != Subformat::stream_optimized)
        return fail(Errc::invalid_argument, fmt::format("VMDK compression needs subformat=streamOptimized, not {}", subformat_name(s.subformat)));

    if (adapter) {
        if (*adapter != "ide" && *adapter != "lsilogic" && *adapter != "buslogic" && *adapter != "legacyESX")
            return fail(Errc::invalid_argument, fmt::format("option adapter_type: '{}' is not ide, lsilogic, buslogic or legacyESX", *adapter));
        s.adapter_type = *adapter;
    }
    if (hw) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(hw->data(), hw->data() + hw->size(), v);
        if (ec != std::errc() || p != hw->data() + hw->size() || v < 1 || v > 255)
            return fail(Errc::invalid_argument, fmt::format("option hwversion: '{}' is not a hardware version (1..255)", *hw));
        s.hw_version = std::to_string(v);
    }
    if (level) {
        if (s.subformat != Subformat::stream_optimized)
            return fail(Errc::invalid_argument, "option compression_level applies only to subformat=streamOptimized");
        int v = 0;
        auto [p, ec] = std::from_chars(level->data(), level->data() + level->size(), v);
        if (ec != std::errc() || p != level->data() + level->size() || v < 1 || v > 12)
            return fail(Errc::invalid_argument, fmt::format("option compression_level: '{}' is not a level from 1 to 12", *level));
        s.compression_level = v;
    }
    s.capacity_sectors = (req.virtual_size + 511) / 512;
    // A sparse header with capacity 0 means "descriptor only" to every reader, and a zero-sector
    // extent line is skipped: an empty VMDK cannot be opened again, by qemu, VMware or us.
    if (s.capacity_sectors == 0) return fail(Errc::invalid_argument, "cannot write an empty (0-byte) disk as VMDK");
    if (s.subformat != Subformat::monolithic_flat && s.capacity_sectors > 0xffffffffULL)
        return fail(Errc::invalid_argument, fmt::format("a {} VMDK holds at most 2 TiB ({} bytes requested); use subformat=monolithicFlat",
                                                        subformat_name(s.subformat), req.virtual_size));
    return s;
}

Result<std::string> extent_line(std::string_view type, std::uint64_t sectors, std::string_view file_name, bool with_offset) {
    if (file_name.empty() || file_name.find_first_of("\"\r\n") != std::string_view::npos)
        return fail(Errc::invalid_argument, fmt::format("file name '{}' cannot be written into a VMDK descriptor", file_name));
    return fmt::format("RW {} {} \"{}\"{}", sectors, type, file_name, with_offset ? " 0" : "");
}

std::string render_descriptor(const WriterSettings &s, std::string_view create_type, const std::vector<std::string> &extent_lines) {
    std::uint32_t cid = 0;
    do cid = static_cast<std::uint32_t>(random_u64());
    while (cid == no_parent_cid || cid == 0xfffffffeu);
    std::string uuid;
    const std::uint64_t a = random_u64(), b = random_u64();
    for (int i = 0; i < 16; ++i) {
        const auto byte = static_cast<unsigned>(((i < 8 ? a : b) >> (8 * (i % 8))) & 0xff);
        if (i) uuid += i == 8 ? '-' : ' ';
        uuid += fmt::format("{:02x}", byte);
    }
    const Geometry g = geometry_for(s);
    std::string out = fmt::format(
        "# Disk DescriptorFile\n"
        "version=1\n"
        "encoding=\"UTF-8\"\n"
        "CID={:08x}\n"
        "parentCID=ffffffff\n"
        "createType=\"{}\"\n"
        "\n"
        "# Extent description\n",
        cid, create_type);
    for (const auto &l : extent_lines) out += l + "\n";
    out += fmt::format(
        "\n"
        "# The Disk Data Base\n"
        "#DDB\n"
        "\n"
        "ddb.adapterType = \"{}\"\n"
        "ddb.geometry.cylinders = \"{}\"\n"
        "ddb.geometry.heads = \"{}\"\n"
        "ddb.geometry.sectors = \"{}\"\n"
        "ddb.uuid = \"{}\"\n"
        "ddb.virtualHWVersion = \"{}\"\n",
        s.adapter_type, g.cylinders, g.heads, g.sectors, uuid, s.hw_version);
    return out;
}

Result<void> AppendWriter::append(std::span<const std::byte> bytes) {
    if (buffer_.empty() && bytes.size() >= buffer_limit) {
        HSDK_TRYV(file_->write_all(flushed_, bytes));
        flushed_ += bytes.size();
        return success();
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    if (buffer_.size() >= buffer_limit) return flush();
    return success();
}

Result<void> AppendWriter::append_zeros(std::uint64_t count) {
    buffer_.resize(buffer_.size() + static_cast<std::size_t>(count), std::byte{0});
    if (buffer_.size() >= buffer_limit) return flush();
    return success();
}

Result<void> AppendWriter::flush() {
    if (buffer_.empty()) return success();
    HSDK_TRYV(file_->write_all(flushed_, buffer_));
    flushed_ += buffer_.size();
    buffer_.clear();
    return success();
}

}  // namespace hypersdk::format::vmdk
