// Base64 (RFC 4648): the standard alphabet with padding (HTTP headers, checksums clouds send) and
// the URL-safe one without (JSON Web Tokens).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hypersdk::core {

std::string base64_encode(std::span<const std::byte> data);
inline std::string base64_encode(std::string_view text) { return base64_encode(std::as_bytes(std::span(text.data(), text.size()))); }
// Padded standard base64 only; nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view text);
// base64url without padding.
std::string base64url_encode(std::span<const std::byte> data);
inline std::string base64url_encode(std::string_view text) { return base64url_encode(std::as_bytes(std::span(text.data(), text.size()))); }

}  // namespace hypersdk::core
