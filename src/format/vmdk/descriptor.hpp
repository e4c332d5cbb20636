// The VMDK text descriptor: header keys (version, CID, parentCID, createType, parentFileNameHint),
// extent lines and the disk database (ddb.*). Found as a separate small file or embedded in a sparse
// extent. Parsing is strict about structure and bounded in size, because descriptors come from strangers.
#pragma once

#include <hypersdk/error.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hypersdk::format::vmdk {

inline constexpr std::uint64_t max_descriptor_bytes = 10ULL << 20;
inline constexpr std::size_t max_descriptor_lines = 200000;
inline constexpr std::size_t max_extents = 10000;
inline constexpr std::uint32_t no_parent_cid = 0xffffffffu;

enum class ExtentAccess { rw, rdonly, noaccess };
enum class ExtentType { flat, sparse, zero, vmfs, vmfs_sparse, vmfs_rdm, vmfs_raw, se_sparse };

std::string_view extent_access_name(ExtentAccess a) noexcept;
std::string_view extent_type_name(ExtentType t) noexcept;

struct ExtentLine {
    ExtentAccess access = ExtentAccess::rw;
    std::uint64_t sectors = 0;
    ExtentType type = ExtentType::flat;
    std::string filename;     // as written (without quotes); empty for ZERO
    std::uint64_t offset = 0;  // sectors into the file (FLAT / VMFS)
    std::size_t line = 0;      // 1-based line number, for messages
};

struct Descriptor {
    std::string version;  // "1", "2" or "3" as written, empty when absent
    std::optional<std::uint32_t> cid;
    std::optional<std::uint32_t> parent_cid;
    std::string create_type;
    std::string parent_file_name_hint;
    std::vector<std::pair<std::string, std::string>> ddb;  // ddb.* keys in order, values unquoted
    std::vector<std::pair<std::string, std::string>> other;  // other header keys (encoding, ...)
    std::vector<ExtentLine> extents;

    // The ddb value of `key` ("ddb.adapterType"), if present.
    [[nodiscard]] const std::string *find_ddb(std::string_view key) const noexcept;
};

// Cuts a descriptor out of raw bytes: stops at the first NUL (embedded descriptors are NUL padded) and
// refuses control characters other than tab, CR and LF ("not text").
Result<std::string_view> descriptor_text(std::string_view raw, std::string_view where);

// Parses descriptor text (CRLF or LF line ends, # comments, quoted values and file names).
Result<Descriptor> parse_descriptor(std::string_view text);

// True when `head` (the first bytes of a file) looks like a text descriptor: optional comment and
// blank lines, then a `version=N` line.
bool looks_like_descriptor(std::string_view head) noexcept;

}  // namespace hypersdk::format::vmdk
