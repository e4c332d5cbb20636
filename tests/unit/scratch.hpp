// Scratch files of the unit tests: every test binary writes into HSDK_TEST_WORK_DIR, and ctest runs
// their test cases as parallel processes there, so each case must use names of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <dirent.h>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace hypersdk::test {

// Seeded pseudo-random bytes (a linear congruential generator: the same everywhere).
inline std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::uint32_t x = seed * 2654435761u + 7;
    for (auto &b : v) {
        x = x * 1664525u + 1013904223u;
        b = static_cast<std::byte>(x >> 24);
    }
    return v;
}

inline std::string work(const std::string &name) { return std::string(HSDK_TEST_WORK_DIR) + "/" + name; }

inline bool exists(const std::string &path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

// Writes `bytes` as work(name), replacing what was there; returns the path.
inline std::string write_file(const std::string &name, const std::vector<std::byte> &bytes) {
    const auto path = work(name);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
}

// Temporaries of outputs whose names start with `stem` (tests of other modules share the folder
// and may have their own in flight).
inline int leftover_temporaries(const std::string &stem) {
    int n = 0;
    DIR *d = ::opendir(HSDK_TEST_WORK_DIR);
    if (d == nullptr) return -1;
    while (auto *e = ::readdir(d))
        if (const std::string name(e->d_name); name.find(".hsdk-") != std::string::npos && name.rfind("." + stem, 0) == 0) ++n;
    ::closedir(d);
    return n;
}

}  // namespace hypersdk::test
