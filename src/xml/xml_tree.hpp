// A small namespace-aware element tree over Expat, for documents from strangers (OVF, SOAP).
// Hard limits on size, depth and element count; DTDs and entity declarations are refused outright
// (no billion-laughs, no external entities).
#pragma once

#include <hypersdk/error.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::xml {

struct Attribute {
    std::string ns;     // namespace URI, empty for unqualified attributes
    std::string local;  // local name
    std::string value;
};

struct Element {
    std::string ns;     // namespace URI
    std::string local;  // local name
    std::vector<Attribute> attributes;
    std::string text;   // character data directly inside this element, concatenated
    std::vector<std::unique_ptr<Element>> children;
    std::size_t line = 0;  // where it starts, for error messages

    // First child with this local name (any namespace when ns is empty).
    [[nodiscard]] const Element *child(std::string_view local_name, std::string_view ns_uri = {}) const;
    [[nodiscard]] std::vector<const Element *> children_named(std::string_view local_name, std::string_view ns_uri = {}) const;
    // Attribute by local name; any namespace when ns is empty.
    [[nodiscard]] std::optional<std::string_view> attr(std::string_view local_name, std::string_view ns_uri = {}) const;
    // Trimmed text of the first child with this local name, or empty.
    [[nodiscard]] std::string child_text(std::string_view local_name) const;
    // First descendant (depth-first) with this local name.
    [[nodiscard]] const Element *find(std::string_view local_name) const;
};

struct Limits {
    std::size_t max_bytes = 64u << 20;
    std::size_t max_depth = 128;
    std::size_t max_elements = 2'000'000;
    std::size_t max_text = 16u << 20;  // per element
};

// Parses a whole document. `what` names it in errors ("OVF descriptor 'x.ovf'"). Malformed XML is
// Errc::corrupt_image with the line number; exceeding a limit likewise.
Result<std::unique_ptr<Element>> parse(std::string_view document, std::string_view what, const Limits &limits = {});

// Escapes text for element content and attribute values (&, <, >, ", ').
std::string escape(std::string_view text);

std::string trim(std::string_view s);

}  // namespace hypersdk::xml
