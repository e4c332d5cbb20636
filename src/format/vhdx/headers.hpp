// The header section: file type identifier, the two headers and the two region tables.
#pragma once

#include "format/vhdx/guid.hpp"

#include <hypersdk/error.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace hypersdk::format::vhdx {

struct Header {
    std::uint64_t sequence = 0;
    Guid file_write_guid;
    Guid data_write_guid;
    Guid log_guid;  // zero: the log holds nothing to replay
    std::uint16_t log_version = 0;
    std::uint16_t version = 1;
    std::uint32_t log_length = 0;
    std::uint64_t log_offset = 0;
};

// Parses one 4 KiB header slot. Fails (corrupt_image, saying why) when the signature or the
// checksum does not validate: such a header is not "valid" in the spec's sense.
Result<Header> parse_header(std::span<const std::byte> slot);
// Fills `out` (header_size bytes) with the header and its checksum; reserved bytes are zero.
void serialize_header(const Header &header, std::span<std::byte> out);

struct ActiveHeader {
    Header header;
    int index = 1;  // 1 (at 64 KiB) or 2 (at 128 KiB)
    std::string other_problem;  // why the other header is not valid, empty when it is
};
// The current header per [MS-VHDX] 2.2.2: the only valid one, or the valid one with the higher
// sequence number. Two valid headers with the same number are accepted only when identical
// (Disk2VHD writes them so), like qemu.
Result<ActiveHeader> choose_header(const Result<Header> &first, const Result<Header> &second);

// Creator string stored after "vhdxfile" (diagnostic only); empty when absent or undecodable.
std::string parse_creator(std::span<const std::byte> identifier);

struct RegionEntry {
    Guid guid;
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
    bool required = false;
};

struct RegionTable {
    std::vector<RegionEntry> entries;
};

// Parses one 64 KiB region table (signature, checksum, entry count).
Result<RegionTable> parse_region_table(std::span<const std::byte> table);
void serialize_region_table(const RegionTable &table, std::span<std::byte> out);

struct Regions {
    RegionEntry bat;
    RegionEntry metadata;
};
// Finds the BAT and metadata regions and validates every entry: inside the file, clear of the
// header section, the log and each other; an unknown region marked required is unsupported.
Result<Regions> locate_regions(const RegionTable &table, std::uint64_t file_size, std::uint64_t log_offset,
                               std::uint64_t log_length);

}  // namespace hypersdk::format::vhdx
