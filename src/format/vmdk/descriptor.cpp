#include "format/vmdk/descriptor.hpp"

#include <fmt/format.h>

#include <charconv>

namespace hypersdk::format::vmdk {
namespace {

bool is_blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

std::string_view unquote(std::string_view v) noexcept {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') return v.substr(1, v.size() - 2);
    return v;
}

bool parse_u64(std::string_view s, std::uint64_t &out) noexcept {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
    return ec == std::errc() && p == s.data() + s.size();
}

// CIDs are written as up to eight hex digits.
bool parse_cid(std::string_view s, std::uint32_t &out) noexcept {
    if (s.empty() || s.size() > 8) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
    return ec == std::errc() && p == s.data() + s.size();
}

// Splits an extent line into tokens; a token starting with a quote runs to the next quote (file
// names may contain spaces). Fails on an unterminated quote.
bool tokenize(std::string_view line, std::vector<std::string_view> &tokens, std::vector<bool> &quoted) {
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_blank(line[i])) ++i;
        if (i >= line.size()) break;
        if (line[i] == '"') {
            const std::size_t close = line.find('"', i + 1);
            if (close == std::string_view::npos) return false;
            tokens.push_back(line.substr(i + 1, close - i - 1));
            quoted.push_back(true);
            i = close + 1;
        } else {
            const std::size_t start = i;
            while (i < line.size() && !is_blank(line[i])) ++i;
            tokens.push_back(line.substr(start, i - start));
            quoted.push_back(false);
        }
    }
    return true;
}

std::optional<ExtentAccess> access_from(std::string_view s) noexcept {
    if (s == "RW") return ExtentAccess::rw;
    if (s == "RDONLY") return ExtentAccess::rdonly;
    if (s == "NOACCESS") return ExtentAccess::noaccess;
    return std::nullopt;
}

std::optional<ExtentType> type_from(std::string_view s) noexcept {
    if (s == "FLAT") return ExtentType::flat;
    if (s == "SPARSE") return ExtentType::sparse;
    if (s == "ZERO") return ExtentType::zero;
    if (s == "VMFS") return ExtentType::vmfs;
    if (s == "VMFSSPARSE") return ExtentType::vmfs_sparse;
    if (s == "VMFSRDM") return ExtentType::vmfs_rdm;
    if (s == "VMFSRAW") return ExtentType::vmfs_raw;
    if (s == "SESPARSE") return ExtentType::se_sparse;
    return std::nullopt;
}

Result<ExtentLine> parse_extent_line(std::string_view line, std::size_t number) {
    auto bad = [&](std::string_view why) {
        return fail_corrupt(fmt::format("descriptor line {}: {} in extent line '{}'", number, why, line));
    };
    std::vector<std::string_view> tokens;
    std::vector<bool> quoted;
    if (!tokenize(line, tokens, quoted)) return bad("unterminated quote");
    if (tokens.size() < 3) return bad("too few fields");
    ExtentLine e;
    e.line = number;
    e.access = *access_from(tokens[0]);
    if (!parse_u64(tokens[1], e.sectors)) return bad("sector count is not a number");
    auto type = type_from(tokens[2]);
    if (!type) return bad(fmt::format("unknown extent type '{}'", tokens[2]));
    e.type = *type;
    const bool flat_like = e.type == ExtentType::flat || e.type == ExtentType::vmfs || e.type == ExtentType::vmfs_rdm ||
                           e.type == ExtentType::vmfs_raw;
    if (tokens.size() >= 4) {
        e.filename = std::string(tokens[3]);
        if (e.filename.empty()) return bad("empty file name");
    } else if (e.type != ExtentType::zero) {
        return bad("no file name");
    }
    if (tokens.size() >= 5) {
        if (!flat_like) return bad("unexpected text after the file name");
        if (quoted[4] || !parse_u64(tokens[4], e.offset)) return bad("start sector is not a number");
        // Device extents may carry a partition UUID and device name after the offset; they are refused
        // later by type, so extra fields are tolerated only there.
        if (tokens.size() > 5 && (e.type == ExtentType::flat || e.type == ExtentType::vmfs))
            return bad("unexpected text after the start sector");
    }
    return e;
}

}  // namespace

std::string_view extent_access_name(ExtentAccess a) noexcept {
    switch (a) {
    case ExtentAccess::rw: return "RW";
    case ExtentAccess::rdonly: return "RDONLY";
    case ExtentAccess::noaccess: return "NOACCESS";
    }
    return "?";
}

std::string_view extent_type_name(ExtentType t) noexcept {
    switch (t) {
    case ExtentType::flat: return "FLAT";
    case ExtentType::sparse: return "SPARSE";
    case ExtentType::zero: return "ZERO";
    case ExtentType::vmfs: return "VMFS";
    case ExtentType::vmfs_sparse: return "VMFSSPARSE";
    case ExtentType::vmfs_rdm: return "VMFSRDM";
    case ExtentType::vmfs_raw: return "VMFSRAW";
    case ExtentType::se_sparse: return "SESPARSE";
    }
    return "?";
}

const std::string *Descriptor::find_ddb(std::string_view key) const noexcept {
    for (const auto &[k, v] : ddb)
        if (k == key) return &v;
    return nullptr;
}

Result<std::string_view> descriptor_text(std::string_view raw, std::string_view where) {
    const std::size_t nul = raw.find('\0');
    std::string_view text = nul == std::string_view::npos ? raw : raw.substr(0, nul);
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
            return fail_corrupt(fmt::format("{} is not text (byte {:#04x} at offset {})", where, c, i));
        if (c == 0x7f) return fail_corrupt(fmt::format("{} is not text (byte 0x7f at offset {})", where, i));
    }
    return text;
}

Result<Descriptor> parse_descriptor(std::string_view text) {
    if (text.size() > max_descriptor_bytes)
        return fail_corrupt(fmt::format("descriptor of {} bytes exceeds the limit of {} bytes", text.size(), max_descriptor_bytes));
    Descriptor d;
    std::size_t number = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        const std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        if (++number > max_descriptor_lines)
            return fail_corrupt(fmt::format("descriptor has more than {} lines", max_descriptor_lines));
        const std::string_view line = trim(raw);
        if (line.empty() || line.front() == '#') continue;

        const std::string_view first = line.substr(0, line.find_first_of(" \t"));
        if (access_from(first)) {
            if (d.extents.size() >= max_extents)
                return fail_corrupt(fmt::format("descriptor lists more than {} extents", max_extents));
            HSDK_TRY(auto e, parse_extent_line(line, number));
            d.extents.push_back(std::move(e));
            continue;
        }
        const std::size_t eq = line.find('=');
        if (eq == std::string_view::npos || eq == 0)
            return fail_corrupt(fmt::format("descriptor line {} is neither a key=value pair nor an extent: '{}'", number, line));
        const std::string_view key = trim(line.substr(0, eq));
        const std::string_view value = unquote(trim(line.substr(eq + 1)));
        if (key == "version") {
            d.version = std::string(value);
        } else if (key == "CID") {
            std::uint32_t cid = 0;
            if (!parse_cid(value, cid)) return fail_corrupt(fmt::format("descriptor line {}: CID '{}' is not a hex number", number, value));
            d.cid = cid;
        } else if (key == "parentCID") {
            std::uint32_t cid = 0;
            if (!parse_cid(value, cid))
                return fail_corrupt(fmt::format("descriptor line {}: parentCID '{}' is not a hex number", number, value));
            d.parent_cid = cid;
        } else if (key == "createType") {
            d.create_type = std::string(value);
        } else if (key == "parentFileNameHint") {
            d.parent_file_name_hint = std::string(value);
        } else if (key.starts_with("ddb.")) {
            d.ddb.emplace_back(std::string(key), std::string(value));
        } else {
            d.other.emplace_back(std::string(key), std::string(value));
        }
    }
    return d;
}

bool looks_like_descriptor(std::string_view head) noexcept {
    std::size_t pos = 0;
    while (pos < head.size()) {
        const std::size_t nl = head.find('\n', pos);
        const std::string_view line = trim(head.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
        if (nl == std::string_view::npos && line.size() < 9) return false;  // cut off before a verdict
        pos = nl == std::string_view::npos ? head.size() : nl + 1;
        if (line.empty() || line.front() == '#') continue;
        const std::size_t eq = line.find('=');
        if (eq == std::string_view::npos) return false;
        const std::string_view value = unquote(trim(line.substr(eq + 1)));
        return trim(line.substr(0, eq)) == "version" && (value == "1" || value == "2" || value == "3");
    }
    return false;
}

}  // namespace hypersdk::format::vmdk
