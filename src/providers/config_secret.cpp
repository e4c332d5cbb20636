#include "providers/config_secret.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

namespace hypersdk {

Result<std::string> config_secret(const nlohmann::json &config, const std::string &key) {
    auto text = [&](const std::string &k) {
        return config.contains(k) && config[k].is_string() ? config[k].get<std::string>() : std::string();
    };
    if (auto direct = text(key); !direct.empty()) return direct;
    if (const std::string var = text(key + "_env"); !var.empty()) {
        const char *v = std::getenv(var.c_str());
        if (v == nullptr || *v == '\0') return fail(Errc::invalid_argument, fmt::format("{}_env: variable {} is not set", key, var));
        return std::string(v);
    }
    if (const std::string file = text(key + "_file"); !file.empty()) {
        std::ifstream in(file);
        std::string line;
        if (!in || !std::getline(in, line)) return fail(Errc::invalid_argument, fmt::format("{}_file: cannot read '{}'", key, file));
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        return line;
    }
    return std::string();
}

}  // namespace hypersdk
