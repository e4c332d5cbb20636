#include "core/base64.hpp"

#include <openssl/evp.h>

#include <algorithm>

namespace hypersdk::core {

std::string base64_encode(std::span<const std::byte> data) {
    std::string out(4 * ((data.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), reinterpret_cast<const unsigned char *>(data.data()),
                                  static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(std::max(0, n)));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) return std::nullopt;
    std::string out(text.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()), reinterpret_cast<const unsigned char *>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    std::size_t len = static_cast<std::size_t>(n);
    if (text.back() == '=') --len;
    if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
    out.resize(len);
    return out;
}

std::string base64url_encode(std::span<const std::byte> data) {
    std::string s = base64_encode(data);
    while (!s.empty() && s.back() == '=') s.pop_back();
    std::replace(s.begin(), s.end(), '+', '-');
    std::replace(s.begin(), s.end(), '/', '_');
    return s;
}

}  // namespace hypersdk::core
