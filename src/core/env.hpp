// Environment variables as strings: empty when unset.
#pragma once

#include <cstdlib>
#include <string>

namespace hypersdk::core {

inline std::string env(const char *name) {
    const char *v = std::getenv(name);
    return v == nullptr ? std::string() : std::string(v);
}

}  // namespace hypersdk::core
