// Reading fields of a cloud API's JSON answer without throwing: absent or mistyped reads as empty.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace hypersdk::json_fields {

inline std::string str(const nlohmann::json &j, const char *key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

// A number that APIs send either as a JSON number or as a decimal string (GCP's int64 fields).
inline std::uint64_t u64(const nlohmann::json &j, const char *key) {
    if (!j.is_object() || !j.contains(key)) return 0;
    const auto &v = j[key];
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_number_integer()) return v.get<std::int64_t>() < 0 ? 0 : static_cast<std::uint64_t>(v.get<std::int64_t>());
    if (v.is_string()) {
        const auto &s = v.get_ref<const std::string &>();
        std::uint64_t n = 0;
        if (s.empty() || s.size() > 19) return 0;
        for (char c : s) {
            if (c < '0' || c > '9') return 0;
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return n;
    }
    return 0;
}

}  // namespace hypersdk::json_fields
