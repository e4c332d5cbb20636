#include "format/vhdx/headers.hpp"

#include "core/endian.hpp"
#include "format/vhdx/constants.hpp"
#include "format/vhdx/crc32c.hpp"
#include "format/vhdx/utf16.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vhdx {

namespace {
bool has_signature(std::span<const std::byte> data, const char *sig) {
    const std::size_t n = std::strlen(sig);
    return data.size() >= n && std::memcmp(data.data(), sig, n) == 0;
}

void put_signature(std::span<std::byte> out, const char *sig) { std::memcpy(out.data(), sig, std::strlen(sig)); }
}  // namespace

Result<Header> parse_header(std::span<const std::byte> slot) {
    if (slot.size() != header_size) return fail(Errc::internal, "VHDX header slot has the wrong size");
    if (!has_signature(slot, header_signature)) return fail_corrupt("signature is not 'head'");
    const std::uint32_t stored = le32(slot.data(), 4);
    const std::uint32_t computed = crc32c_with_zeroed_field(slot, 4);
    if (stored != computed)
        return fail_corrupt(fmt::format("checksum mismatch (stored {:#010x}, computed {:#010x})", stored, computed));
    Header h;
    const std::byte *p = slot.data();
    h.sequence = le64(p, 8);
    h.file_write_guid = Guid::read(p + 16);
    h.data_write_guid = Guid::read(p + 32);
    h.log_guid = Guid::read(p + 48);
    h.log_version = le16(p, 64);
    h.version = le16(p, 66);
    h.log_length = le32(p, 68);
    h.log_offset = le64(p, 72);
    return h;
}

void serialize_header(const Header &h, std::span<std::byte> out) {
    std::fill(out.begin(), out.end(), std::byte{0});
    std::byte *p = out.data();
    put_signature(out, header_signature);
    store_le<std::uint64_t>(p + 8, h.sequence);
    h.file_write_guid.write(p + 16);
    h.data_write_guid.write(p + 32);
    h.log_guid.write(p + 48);
    store_le<std::uint16_t>(p + 64, h.log_version);
    store_le<std::uint16_t>(p + 66, h.version);
    store_le<std::uint32_t>(p + 68, h.log_length);
    store_le<std::uint64_t>(p + 72, h.log_offset);
    store_le<std::uint32_t>(p + 4, crc32c_with_zeroed_field(out.first(header_size), 4));
}

namespace {
bool same_header(const Header &a, const Header &b) {
    return a.sequence == b.sequence && a.file_write_guid == b.file_write_guid && a.data_write_guid == b.data_write_guid &&
           a.log_guid == b.log_guid && a.log_version == b.log_version && a.version == b.version &&
           a.log_length == b.log_length && a.log_offset == b.log_offset;
}
}  // namespace

Result<ActiveHeader> choose_header(const Result<Header> &first, const Result<Header> &second) {
    ActiveHeader active;
    if (!first && !second)
        return fail_corrupt(fmt::format("no valid VHDX header (header 1: {}; header 2: {})", first.error().message,
                                        second.error().message));
    if (first && !second) {
        active.header = first.value();
        active.index = 1;
        active.other_problem = second.error().message;
    } else if (!first && second) {
        active.header = second.value();
        active.index = 2;
        active.other_problem = first.error().message;
    } else if (first.value().sequence > second.value().sequence) {
        active.header = first.value();
        active.index = 1;
    } else if (second.value().sequence > first.value().sequence) {
        active.header = second.value();
        active.index = 2;
    } else if (same_header(first.value(), second.value())) {
        active.header = first.value();
        active.index = 1;
    } else {
        return fail_corrupt(fmt::format("both VHDX headers have sequence number {} but differ; cannot tell which is current",
                                        first.value().sequence));
    }
    if (active.header.version != 1)
        return fail_unsupported(fmt::format("VHDX version {} (header {}); only version 1 is known", active.header.version,
                                            active.index));
    return active;
}

std::string parse_creator(std::span<const std::byte> identifier) {
    if (identifier.size() < 8 + creator_bytes) return {};
    auto text = utf16le_to_utf8(identifier.subspan(8, creator_bytes), /*stop_at_nul=*/true);
    return text ? *text : std::string();
}

Result<RegionTable> parse_region_table(std::span<const std::byte> table) {
    if (table.size() != region_table_size) return fail(Errc::internal, "VHDX region table has the wrong size");
    if (!has_signature(table, region_signature)) return fail_corrupt("signature is not 'regi'");
    const std::uint32_t stored = le32(table.data(), 4);
    const std::uint32_t computed = crc32c_with_zeroed_field(table, 4);
    if (stored != computed)
        return fail_corrupt(fmt::format("checksum mismatch (stored {:#010x}, computed {:#010x})", stored, computed));
    const std::uint32_t count = le32(table.data(), 8);
    if (count > max_region_entries) return fail_corrupt(fmt::format("{} entries (at most {})", count, max_region_entries));
    RegionTable rt;
    rt.entries.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::byte *e = table.data() + 16 + std::size_t{i} * 32;
        RegionEntry r;
        r.guid = Guid::read(e);
        r.offset = le64(e, 16);
        r.length = le32(e, 24);
        r.required = (le32(e, 28) & 1) != 0;
        rt.entries.push_back(r);
    }
    return rt;
}

void serialize_region_table(const RegionTable &rt, std::span<std::byte> out) {
    std::fill(out.begin(), out.end(), std::byte{0});
    std::byte *p = out.data();
    put_signature(out, region_signature);
    store_le<std::uint32_t>(p + 8, static_cast<std::uint32_t>(rt.entries.size()));
    for (std::size_t i = 0; i < rt.entries.size(); ++i) {
        std::byte *e = p + 16 + i * 32;
        rt.entries[i].guid.write(e);
        store_le<std::uint64_t>(e + 16, rt.entries[i].offset);
        store_le<std::uint32_t>(e + 24, rt.entries[i].length);
        store_le<std::uint32_t>(e + 28, rt.entries[i].required ? 1u : 0u);
    }
    store_le<std::uint32_t>(p + 4, crc32c_with_zeroed_field(out.first(region_table_size), 4));
}

namespace {
std::string region_name(const Guid &g) {
    if (g == bat_region_guid) return "BAT region";
    if (g == metadata_region_guid) return "metadata region";
    return "region " + g.to_string();
}
}  // namespace

Result<Regions> locate_regions(const RegionTable &table, std::uint64_t file_size, std::uint64_t log_offset,
                               std::uint64_t log_length) {
    const RegionEntry *bat = nullptr, *metadata = nullptr;
    struct Span {
        std::uint64_t begin, end;
        std::string name;
    };
    std::vector<Span> taken{{0, header_section_size, "header section"}};
    if (log_length > 0) taken.push_back({log_offset, log_offset + log_length, "log"});
    for (const auto &r : table.entries) {
        const std::string name = region_name(r.guid);
        if (r.guid == bat_region_guid || r.guid == metadata_region_guid) {
            const RegionEntry *&slot = r.guid == bat_region_guid ? bat : metadata;
            if (slot != nullptr) return fail_corrupt(fmt::format("region table lists the {} twice", name));
            slot = &r;
        } else if (r.required) {
            return fail_unsupported(fmt::format("VHDX {} is marked required but is unknown to this reader", name));
        }
        if (r.length == 0) return fail_corrupt(fmt::format("{} at offset {:#x} has length 0", name, r.offset));
        if (r.offset > file_size || r.length > file_size - r.offset)
            return fail_corrupt(fmt::format("{} ({:#x}+{:#x}) lies beyond the end of the file ({:#x})", name, r.offset,
                                            r.length, file_size));
        const Span s{r.offset, r.offset + r.length, name};
        for (const auto &t : taken)
            if (s.begin < t.end && t.begin < s.end)
                return fail_corrupt(fmt::format("{} ({:#x}+{:#x}) overlaps the {}", name, r.offset, r.length, t.name));
        taken.push_back(s);
    }
    if (bat == nullptr) return fail_corrupt("region table has no BAT region");
    if (metadata == nullptr) return fail_corrupt("region table has no metadata region");
    return Regions{*bat, *metadata};
}

}  // namespace hypersdk::format::vhdx
