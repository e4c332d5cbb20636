// Parsing `-o key=value,...` and the helpers drivers use to take their options.
#include "format/layer.hpp"

#include <fmt/format.h>

#include <charconv>

namespace hypersdk {

Result<FormatOptions> parse_format_options(std::string_view text) {
    FormatOptions out;
    // qemu-img syntax: comma separated; a literal comma inside a value is written ",,".
    std::string key, value, *cur = &key;
    auto flush = [&]() -> Result<void> {
        if (key.empty() && value.empty() && cur == &key) return success();
        if (cur == &key) return fail(Errc::invalid_argument, fmt::format("option '{}' has no value (expected key=value)", key));
        if (key.empty()) return fail(Errc::invalid_argument, "option with an empty name");
        out.emplace_back(key, value);
        key.clear();
        value.clear();
        cur = &key;
        return success();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == ',') {
            if (i + 1 < text.size() && text[i + 1] == ',') {
                cur->push_back(',');
                ++i;
                continue;
            }
            HSDK_TRYV(flush());
        } else if (c == '=' && cur == &key) {
            cur = &value;
        } else {
            cur->push_back(c);
        }
    }
    HSDK_TRYV(flush());
    return out;
}

namespace format {

std::optional<std::string> take_option(FormatOptions &options, std::string_view key) {
    std::optional<std::string> value;
    for (auto it = options.begin(); it != options.end();) {
        if (it->first == key) {
            value = it->second;
            it = options.erase(it);
        } else {
            ++it;
        }
    }
    return value;
}

Result<void> reject_unknown_options(const FormatOptions &options, std::string_view format) {
    if (options.empty()) return success();
    return fail(Errc::invalid_argument, fmt::format("format '{}' does not support option '{}'", format, options.front().first));
}

Result<std::uint64_t> parse_size_option(std::string_view key, std::string_view value) {
    std::uint64_t n = 0;
    const char *begin = value.data(), *end = value.data() + value.size();
    auto [p, ec] = std::from_chars(begin, end, n);
    if (ec != std::errc() || p == begin) return fail(Errc::invalid_argument, fmt::format("option {}: '{}' is not a size", key, value));
    std::uint64_t mult = 1;
    std::string_view suffix(p, static_cast<std::size_t>(end - p));
    if (suffix == "" || suffix == "b" || suffix == "B") mult = 1;
    else if (suffix == "k" || suffix == "K") mult = 1ULL << 10;
    else if (suffix == "M") mult = 1ULL << 20;
    else if (suffix == "G") mult = 1ULL << 30;
    else if (suffix == "T") mult = 1ULL << 40;
    else return fail(Errc::invalid_argument, fmt::format("option {}: unknown size suffix in '{}'", key, value));
    if (n > UINT64_MAX / mult) return fail(Errc::invalid_argument, fmt::format("option {}: '{}' is too large", key, value));
    return n * mult;
}

Result<bool> parse_bool_option(std::string_view key, std::string_view value) {
    if (value == "on" || value == "true" || value == "yes" || value == "1") return true;
    if (value == "off" || value == "false" || value == "no" || value == "0") return false;
    return fail(Errc::invalid_argument, fmt::format("option {}: expected on or off, got '{}'", key, value));
}

void append_extent(std::vector<Extent> &out, const Extent &e) {
    if (e.length == 0) return;
    if (!out.empty()) {
        Extent &last = out.back();
        const bool host_contiguous = (last.host_offset == no_host_offset && e.host_offset == no_host_offset) ||
                                     (last.host_offset != no_host_offset && e.host_offset != no_host_offset &&
                                      last.host_offset + last.length == e.host_offset);
        if (last.end() == e.offset && last.kind == e.kind && last.depth == e.depth && host_contiguous) {
            last.length += e.length;
            return;
        }
    }
    out.push_back(e);
}

Result<EncodedRun> DiskWriter::encode(std::uint64_t, std::span<const std::byte>) const {
    return fail(Errc::internal, "this writer has no encoder");
}

Result<void> DiskWriter::commit_zeroes(std::uint64_t, std::uint64_t) {
    return fail(Errc::unsupported, "this output format cannot store explicit zeros over a backing file");
}

Result<CheckReport> Layer::check() {
    CheckReport report;
    report.format = info().format;
    // Walking the allocation of the whole disk makes the driver validate every table entry.
    std::vector<Extent> runs;
    HSDK_TRYV(layer_status(0, virtual_size(), runs));
    return report;
}

}  // namespace format
}  // namespace hypersdk
