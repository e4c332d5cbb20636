#include "io/tar.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::io {
namespace {

constexpr std::size_t block = 512;

std::string field_string(const std::byte *h, std::size_t off, std::size_t len) {
    const char *p = reinterpret_cast<const char *>(h + off);
    return std::string(p, strnlen(p, len));
}

// Octal with optional leading spaces and trailing NUL/space, or GNU base-256 (high bit set).
Result<std::uint64_t> parse_number(const std::byte *h, std::size_t off, std::size_t len, std::string_view what, std::uint64_t at) {
    const auto *p = reinterpret_cast<const unsigned char *>(h + off);
    if (p[0] & 0x80) {
        if (p[0] != 0x80) return fail_corrupt(fmt::format("tar header at {:#x}: negative or huge {}", at, what));
        std::uint64_t v = 0;
        for (std::size_t i = 1; i < len; ++i) {
            if (v >> 56) return fail_corrupt(fmt::format("tar header at {:#x}: {} overflows", at, what));
            v = (v << 8) | p[i];
        }
        return v;
    }
    std::size_t i = 0;
    while (i < len && p[i] == ' ') ++i;
    std::uint64_t v = 0;
    bool digits = false;
    for (; i < len && p[i] >= '0' && p[i] <= '7'; ++i) {
        if (v >> 60) return fail_corrupt(fmt::format("tar header at {:#x}: {} overflows", at, what));
        v = v * 8 + (p[i] - '0');
        digits = true;
    }
    for (; i < len; ++i)
        if (p[i] != 0 && p[i] != ' ') return fail_corrupt(fmt::format("tar header at {:#x}: {} is not a number", at, what));
    if (!digits && what != "checksum") return std::uint64_t{0};
    return v;
}

}  // namespace

Result<void> check_tar_name(const std::string &name, std::uint64_t at, const TarLimits &limits) {
    if (name.empty()) return fail_corrupt(fmt::format("tar entry at {:#x} has an empty name", at));
    if (name.size() > limits.max_name) return fail_corrupt(fmt::format("tar entry at {:#x} has a name longer than {} bytes", at, limits.max_name));
    if (name.find('\0') != std::string::npos) return fail_corrupt(fmt::format("tar entry at {:#x}: name contains NUL", at));
    if (name.front() == '/')
        return fail(Errc::permission_denied, fmt::format("tar entry '{}' at {:#x} has an absolute path; refusing it", name, at));
    std::size_t start = 0;
    while (start <= name.size()) {
        const auto slash = name.find('/', start);
        const auto end = slash == std::string::npos ? name.size() : slash;
        if (end - start == 2 && name.compare(start, 2, "..") == 0)
            return fail(Errc::permission_denied, fmt::format("tar entry '{}' at {:#x} climbs out with '..'; refusing it", name, at));
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    return success();
}

Result<void> parse_pax_records(std::string_view data, std::string &path, std::uint64_t &size, bool &has_size, std::uint64_t at) {
    std::size_t pos = 0;
    while (pos < data.size()) {
        std::size_t len = 0, i = pos;
        while (i < data.size() && data[i] >= '0' && data[i] <= '9') {
            len = len * 10 + static_cast<std::size_t>(data[i] - '0');
            if (len > data.size()) return fail_corrupt(fmt::format("pax header at {:#x}: record length out of range", at));
            ++i;
        }
        if (i == pos || i >= data.size() || data[i] != ' ' || len < (i - pos) + 2 || pos + len > data.size())
            return fail_corrupt(fmt::format("pax header at {:#x}: malformed record", at));
        std::string_view rec = data.substr(i + 1, pos + len - i - 2);  // without trailing '\n'
        if (data[pos + len - 1] != '\n') return fail_corrupt(fmt::format("pax header at {:#x}: record not terminated", at));
        const auto eq = rec.find('=');
        if (eq == std::string_view::npos) return fail_corrupt(fmt::format("pax header at {:#x}: record without '='", at));
        const auto key = rec.substr(0, eq);
        const auto value = rec.substr(eq + 1);
        if (key == "path") path = std::string(value);
        if (key == "size") {
            std::uint64_t v = 0;
            if (value.empty()) return fail_corrupt(fmt::format("pax header at {:#x}: empty size", at));
            for (char c : value) {
                if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) return fail_corrupt(fmt::format("pax header at {:#x}: bad size", at));
                v = v * 10 + static_cast<std::uint64_t>(c - '0');
            }
            size = v;
            has_size = true;
        }
        pos += len;
    }
    return success();
}

Result<TarHeader> parse_tar_header(std::span<const std::byte, 512> block_bytes, std::uint64_t at) {
    const std::byte *h = block_bytes.data();
    // Checksum: header bytes summed with the checksum field taken as spaces.
    unsigned sum = 0;
    for (std::size_t i = 0; i < block; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    HSDK_TRY(auto stored, parse_number(h, 148, 8, "checksum", at));
    if (stored != sum) return fail_corrupt(fmt::format("tar header at {:#x} has a bad checksum", at));
    TarHeader out;
    HSDK_TRY(out.size, parse_number(h, 124, 12, "size", at));
    out.type = static_cast<char>(h[156]);
    out.name = field_string(h, 0, 100);
    if (field_string(h, 257, 6) == "ustar") {
        const std::string prefix = field_string(h, 345, 155);
        if (!prefix.empty()) out.name = prefix + "/" + out.name;
    }
    return out;
}

Result<std::vector<TarEntry>> list_tar(const File &file, const TarLimits &limits) {
    HSDK_TRY(auto file_size, file.size());
    std::vector<TarEntry> out;
    std::uint64_t at = 0;
    std::string pending_path;
    std::uint64_t pending_size = 0;  // from a pax header, when has_pending_size
    bool has_pending_size = false;
    std::byte h[block];
    while (true) {
        if (at + block > file_size) {
            if (at == file_size) break;  // archive without end-of-archive blocks
            return fail_corrupt(fmt::format("tar archive '{}' is truncated at offset {:#x}", file.path(), at));
        }
        HSDK_TRYV(file.read_exact(at, std::span<std::byte>(h, block)));
        if (std::all_of(h, h + block, [](std::byte b) { return b == std::byte{0}; })) break;
        auto header = parse_tar_header(std::span<const std::byte, block>(h, block), at);
        if (!header) return fail(header.error().with_context(file.path()));
        std::uint64_t size = header.value().size;
        const char type = header.value().type;
        std::string name = std::move(header.value().name);
        const std::uint64_t data_at = at + block;
        if (has_pending_size) size = pending_size;
        if (size > file_size || data_at > file_size - size)
            return fail_corrupt(fmt::format("tar entry '{}' at {:#x} runs past the end of '{}'", name, at, file.path()));
        const std::uint64_t next = data_at + (size + block - 1) / block * block;
        switch (type) {
        case 'x':
        case 'L': {
            if (size > limits.max_extended_header)
                return fail_corrupt(fmt::format("tar extended header at {:#x} is larger than {} bytes", at, limits.max_extended_header));
            std::string data(static_cast<std::size_t>(size), '\0');
            HSDK_TRYV(file.read_exact(data_at, std::as_writable_bytes(std::span(data.data(), data.size()))));
            if (type == 'L') {
                pending_path = std::string(data.c_str());
            } else {
                HSDK_TRYV(parse_pax_records(data, pending_path, pending_size, has_pending_size, at));
            }
            at = next;
            continue;
        }
        case 'g':  // global pax header: nothing we use
            at = next;
            continue;
        case '0':
        case '\0':
        case '7':
        case '5': break;
        case '1':
        case '2':
        case 'K': return fail(Errc::permission_denied, fmt::format("tar entry '{}' at {:#x} is a link; links are not allowed in a package", name, at));
        default:
            return fail(Errc::unsupported, fmt::format("tar entry '{}' at {:#x} has type '{}', which a package cannot contain", name, at, type));
        }
        if (!pending_path.empty()) name = pending_path;
        pending_path.clear();
        has_pending_size = false;
        if (type == '5' && !name.empty() && name.back() == '/') name.pop_back();
        HSDK_TRYV(check_tar_name(name, at, limits));
        if (out.size() >= limits.max_entries) return fail_corrupt(fmt::format("tar archive has more than {} entries", limits.max_entries));
        out.push_back(TarEntry{name, data_at, size, type == '5' ? '5' : '0'});
        at = next;
    }
    return out;
}

Result<std::vector<std::byte>> make_tar_header(const std::string &name, std::uint64_t size, std::uint64_t mtime, char type) {
    if (name.empty() || name.size() > 100 || name.find('\0') != std::string::npos)
        return fail(Errc::invalid_argument, fmt::format("tar member name '{}' must be 1..100 bytes", name));
    std::vector<std::byte> h(block, std::byte{0});
    auto put = [&](std::size_t off, std::string_view s) { std::memcpy(h.data() + off, s.data(), s.size()); };
    auto octal = [&](std::size_t off, std::size_t len, std::uint64_t v) {
        const std::string s = fmt::format("{:0{}o}", v, len - 1);
        put(off, s);
    };
    put(0, name);
    octal(100, 8, 0644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    if (size < (1ULL << 33)) {
        octal(124, 12, size);
    } else {
        h[124] = std::byte{0x80};
        for (int i = 0; i < 8; ++i) h[135 - static_cast<std::size_t>(i)] = static_cast<std::byte>((size >> (8 * i)) & 0xff);
    }
    octal(136, 12, mtime);
    h[156] = static_cast<std::byte>(type);
    put(257, std::string_view("ustar\0" "00", 8));
    put(265, "root");
    put(297, "root");
    std::memset(h.data() + 148, ' ', 8);
    unsigned sum = 0;
    for (auto b : h) sum += static_cast<unsigned char>(b);
    const std::string chk = fmt::format("{:06o}", sum);
    put(148, chk);
    h[154] = std::byte{0};
    h[155] = std::byte{' '};
    return h;
}

Result<void> TarWriter::begin_file(const std::string &name, std::uint64_t size, std::uint64_t mtime) {
    if (in_file_) return fail(Errc::internal, "tar writer: previous file not ended");
    HSDK_TRY(auto h, make_tar_header(name, size, mtime, '0'));
    HSDK_TRYV(file_.write_all(offset_, h));
    offset_ += block;
    remaining_ = size;
    in_file_ = true;
    return success();
}

Result<void> TarWriter::write(std::span<const std::byte> data) {
    if (!in_file_ || data.size() > remaining_) return fail(Errc::internal, "tar writer: more data than the header announced");
    HSDK_TRYV(file_.write_all(offset_, data));
    offset_ += data.size();
    remaining_ -= data.size();
    return success();
}

Result<void> TarWriter::end_file() {
    if (!in_file_ || remaining_ != 0) return fail(Errc::internal, "tar writer: file shorter than its header announced");
    const std::uint64_t pad = (block - offset_ % block) % block;
    if (pad) {
        const std::vector<std::byte> zeros(static_cast<std::size_t>(pad), std::byte{0});
        HSDK_TRYV(file_.write_all(offset_, zeros));
        offset_ += pad;
    }
    in_file_ = false;
    return success();
}

Result<void> TarWriter::finish() {
    if (in_file_) return fail(Errc::internal, "tar writer: file not ended");
    const std::vector<std::byte> zeros(2 * block, std::byte{0});
    HSDK_TRYV(file_.write_all(offset_, zeros));
    offset_ += zeros.size();
    return file_.truncate(offset_);
}

}  // namespace hypersdk::io
