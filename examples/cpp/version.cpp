// Smallest C++ user: Result<T>, errors as values, SHA-256.
#include <hypersdk/hypersdk.hpp>

#include <cstdio>

int main() {
    std::printf("hypersdk %s\n", std::string(hypersdk::version()).c_str());
    auto missing = hypersdk::file_digest_hex("/nonexistent/disk.img", hypersdk::DigestAlgorithm::sha256);
    if (missing) return 1;
    std::printf("expected failure: %s (%s)\n", missing.error().message.c_str(),
                std::string(hypersdk::errc_name(missing.error().code)).c_str());
    std::printf("sha256(\"abc\") = %s\n", hypersdk::sha256_hex("abc").c_str());
    return missing.error().code == hypersdk::Errc::not_found ? 0 : 1;
}
