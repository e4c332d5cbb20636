#include "ops/context.hpp"

#include <fmt/format.h>

namespace hypersdk::ops {

std::string str(const nlohmann::json &r, std::string_view key) {
    auto it = r.find(key);
    return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::string> opt_str(const nlohmann::json &r, std::string_view key) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}

bool flag(const nlohmann::json &r, std::string_view key, bool fallback) {
    auto it = r.find(key);
    return it != r.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

std::uint64_t u64(const nlohmann::json &r, std::string_view key, std::uint64_t fallback) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_number_integer() || it->get<std::int64_t>() < 0) return fallback;
    return it->get<std::uint64_t>();
}

Result<FormatOptions> format_options(const nlohmann::json &r, std::string_view key) {
    auto it = r.find(key);
    if (it == r.end() || it->is_null()) return FormatOptions{};
    if (it->is_string()) return parse_format_options(it->get<std::string>());
    FormatOptions out;
    for (const auto &[name, value] : it->items()) {
        if (value.is_boolean()) out.emplace_back(name, value.get<bool>() ? "on" : "off");
        else if (value.is_string()) out.emplace_back(name, value.get<std::string>());
        else if (value.is_number_integer()) out.emplace_back(name, value.dump());
        else return fail(Errc::invalid_argument, fmt::format("/{}/{}: expected a string, integer or boolean", key, name));
    }
    return out;
}

OpenOptions open_options(const nlohmann::json &r, std::string_view format_key) {
    OpenOptions o;
    o.format = str(r, format_key);
    o.allow_external_files = flag(r, "allow_external_files");
    o.open_backing = flag(r, "open_backing", true);
    return o;
}

}  // namespace hypersdk::ops
