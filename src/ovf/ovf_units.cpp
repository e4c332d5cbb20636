#include "ovf/ovf_units.hpp"

#include "xml/xml_tree.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace hypersdk::ovf {

Result<std::uint64_t> parse_unsigned(std::string_view text, std::string_view what) {
    const std::string t = xml::trim(text);
    if (t.empty()) return fail_corrupt(fmt::format("{} is empty", what));
    std::uint64_t v = 0;
    for (char c : t) {
        if (c < '0' || c > '9') return fail_corrupt(fmt::format("{} '{}' is not a whole number", what, t));
        if (v > (UINT64_MAX - 9) / 10) return fail_corrupt(fmt::format("{} '{}' is too large", what, t));
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

Result<std::uint64_t> byte_units(std::string_view units_in, std::string_view what) {
    std::string u;
    for (char c : units_in)
        if (!std::isspace(static_cast<unsigned char>(c))) u.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    if (u.empty() || u == "byte" || u == "bytes") return std::uint64_t{1};
    static const std::pair<const char *, std::uint64_t> names[] = {
        {"kilobyte", 1ULL << 10}, {"kilobytes", 1ULL << 10}, {"kb", 1ULL << 10},  {"kib", 1ULL << 10},
        {"megabyte", 1ULL << 20}, {"megabytes", 1ULL << 20}, {"mb", 1ULL << 20},  {"mib", 1ULL << 20},
        {"gigabyte", 1ULL << 30}, {"gigabytes", 1ULL << 30}, {"gb", 1ULL << 30},  {"gib", 1ULL << 30},
        {"terabyte", 1ULL << 40}, {"terabytes", 1ULL << 40}, {"tb", 1ULL << 40},  {"tib", 1ULL << 40},
    };
    for (const auto &[name, mult] : names)
        if (u == name) return mult;
    // byte*B^E, optionally followed by another *B^E factor (DSP0004 programmatic units).
    if (u.rfind("byte*", 0) != 0)
        return fail_corrupt(fmt::format("{}: unknown allocation units '{}'", what, units_in));
    std::uint64_t mult = 1;
    std::string_view rest(u);
    rest.remove_prefix(5);
    while (!rest.empty()) {
        const auto caret = rest.find('^');
        const auto star = rest.find('*');
        if (caret == std::string_view::npos) return fail_corrupt(fmt::format("{}: unknown allocation units '{}'", what, units_in));
        const auto base_s = rest.substr(0, caret);
        const auto exp_s = rest.substr(caret + 1, star == std::string_view::npos ? std::string_view::npos : star - caret - 1);
        auto base = parse_unsigned(base_s, what);
        auto exp = parse_unsigned(exp_s, what);
        if (!base || !exp || (base.value() != 2 && base.value() != 10))
            return fail_corrupt(fmt::format("{}: unknown allocation units '{}'", what, units_in));
        for (std::uint64_t i = 0; i < exp.value(); ++i) {
            if (mult > (1ULL << 62) / base.value()) return fail_corrupt(fmt::format("{}: allocation units '{}' out of range", what, units_in));
            mult *= base.value();
        }
        if (star == std::string_view::npos) break;
        rest.remove_prefix(star + 1);
    }
    return mult;
}

Result<std::uint64_t> scaled_bytes(std::string_view value, std::string_view units, std::string_view what) {
    HSDK_TRY(auto v, parse_unsigned(value, what));
    HSDK_TRY(auto mult, byte_units(units, what));
    if (v != 0 && mult > UINT64_MAX / v) return fail_corrupt(fmt::format("{} {} {} overflows", what, value, units));
    return v * mult;
}

std::optional<std::string> normalize_mac(std::string_view text) {
    std::string hex;
    for (char c : text) {
        if (c == ':' || c == '-' || c == '.' || c == ' ') continue;
        if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
        hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    if (hex.size() != 12) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < 12; i += 2) {
        if (i) out.push_back(':');
        out += hex.substr(i, 2);
    }
    return out;
}

}  // namespace hypersdk::ovf
