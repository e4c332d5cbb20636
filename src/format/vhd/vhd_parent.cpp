#include "format/vhd/vhd_parent.hpp"

#include <cstring>

namespace hypersdk::format::vhd {
namespace {

void append_utf8(std::string &out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool is_drive_letter_path(std::string_view p) {
    return p.size() >= 2 && p[1] == ':' && ((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z'));
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}


}  // namespace

std::string utf16_to_utf8(std::span<const std::byte> bytes, bool big_endian) {
    std::string out;
    const std::size_t units = bytes.size() / 2;
    auto unit = [&](std::size_t i) -> std::uint32_t {
        const auto a = std::to_integer<std::uint32_t>(bytes[2 * i]);
        const auto b = std::to_integer<std::uint32_t>(bytes[2 * i + 1]);
        return big_endian ? (a << 8 | b) : (b << 8 | a);
    };
    for (std::size_t i = 0; i < units; ++i) {
        const std::uint32_t u = unit(i);
        if (u == 0) break;
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units) {
            const std::uint32_t lo = unit(i + 1);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                append_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                ++i;
                continue;
            }
        }
        append_utf8(out, (u >= 0xD800 && u <= 0xDFFF) ? 0xFFFD : u);
    }
    return out;
}

std::string windows_path_to_posix(std::string_view in) {
    std::string p(in);
    for (char &c : p)
        if (c == '\\') c = '/';
    if (is_drive_letter_path(p)) {
        // "C:/VMs/base.vhd" names a Windows volume; what is left is an absolute path here.
        p.erase(0, 2);
        if (p.empty() || p.front() != '/') p.insert(p.begin(), '/');
        return p;
    }
    while (p.size() > 2 && p.compare(0, 2, "./") == 0) p.erase(0, 2);
    return p;
}

std::optional<std::string> file_url_to_path(std::string_view url) {
    constexpr std::string_view scheme = "file://";
    if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
    std::string_view rest = url.substr(scheme.size());
    // The authority is empty or "localhost"; another host is not a local file.
    const std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const std::string_view host = rest.substr(0, slash);
    if (!host.empty() && host != "localhost") return std::nullopt;
    rest = rest.substr(slash);
    std::string out;
    for (std::size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '%' && i + 2 < rest.size() && hex_value(rest[i + 1]) >= 0 && hex_value(rest[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_value(rest[i + 1]) * 16 + hex_value(rest[i + 2])));
            i += 2;
        } else {
            out.push_back(rest[i]);
        }
    }
    return out;
}

DecodedLocator decode_locator(const FourCC &platform, std::span<const std::byte> data) {
    DecodedLocator d;
    d.platform = platform;
    if (fourcc_is(platform, "W2ru") || fourcc_is(platform, "W2ku")) {
        d.text = utf16_to_utf8(data, /*big_endian=*/false);
        if (!d.text.empty()) d.path = windows_path_to_posix(d.text);
    } else if (fourcc_is(platform, "MacX") && !data.empty()) {
        const char *p = reinterpret_cast<const char *>(data.data());
        d.text.assign(p, strnlen(p, data.size()));
        if (auto path = file_url_to_path(d.text)) d.path = *path;
    }
    return d;
}

std::optional<ParentChoice> choose_parent(const std::vector<DecodedLocator> &locators, const std::string &parent_name) {
    for (const char *code : {"W2ru", "W2ku", "MacX"}) {
        for (const auto &l : locators) {
            if (std::memcmp(l.platform.data(), code, 4) != 0 || l.path.empty()) continue;
            return ParentChoice{l.path, std::string(code) + " locator"};
        }
    }
    if (!parent_name.empty()) return ParentChoice{windows_path_to_posix(parent_name), "parent name"};
    return std::nullopt;
}

}  // namespace hypersdk::format::vhd
