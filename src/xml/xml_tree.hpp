// A small namespace-aware element tree over Expat, for documents from strangers (OVF descriptors,
// SOAP responses). Hard limits on size, depth and element count; DTDs and entity declarations are
// refused outright (no billion laughs, no external entities).
#pragma once

#include <hypersdk/error.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::xml {

inline constexpr std::string_view xsi_namespace = "http://www.w3.org/2001/XMLSchema-instance";

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
    std::vector<Element> children;
    std::size_t line = 0;  // where it starts, for error messages

    // First child with this local name (any namespace when ns_uri is empty).
    [[nodiscard]] const Element *child(std::string_view local_name, std::string_view ns_uri = {}) const;
    [[nodiscard]] std::vector<const Element *> children_named(std::string_view local_name, std::string_view ns_uri = {}) const;
    // Attribute by local name; any namespace when ns_uri is empty.
    [[nodiscard]] std::optional<std::string_view> attr(std::string_view local_name, std::string_view ns_uri = {}) const;
    // Value of an unqualified (or non-xsi) attribute, "" when absent; "xsi:type" names the
    // schema-instance one, which SOAP puts beside a managed object reference's own "type".
    [[nodiscard]] std::string attribute(std::string_view name) const;
    // The xsi:type of this element without its prefix ("VirtualDisk"), "" when none.
    [[nodiscard]] std::string xsi_type() const;
    // Trimmed text of the first child with this local name, or empty.
    [[nodiscard]] std::string child_text(std::string_view local_name) const;
    // First descendant (depth-first) with this local name.
    [[nodiscard]] const Element *find_descendant(std::string_view local_name) const;
    // Follows a dotted path of child names: path("config.hardware.memoryMB").
    [[nodiscard]] const Element *path(std::string_view dotted) const;
};

struct Limits {
    std::size_t max_bytes = 64u << 20;
    std::size_t max_depth = 128;
    std::size_t max_elements = 2'000'000;
    std::size_t max_text = 16u << 20;  // per element
    // Code of parse failures: corrupt_image for files ("corrupt image: ..."), remote_error for
    // what a server sent.
    Errc error_code = Errc::corrupt_image;
};

// Parses a whole document; `what` names it in errors ("OVF descriptor 'x.ovf'").
Result<Element> parse(std::string_view document, std::string_view what, const Limits &limits = {});

// Escapes text for element content and attribute values (&, <, >, ", ').
std::string escape(std::string_view text);
// Like escape(), but refuses control characters XML 1.0 cannot carry (all but tab, LF, CR).
Result<std::string> escape_strict(std::string_view text);

std::string trim(std::string_view s);

}  // namespace hypersdk::xml
