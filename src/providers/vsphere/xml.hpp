// A small element tree from Expat, for SOAP responses. The input is hostile until proven
// otherwise: document type declarations (and so every entity) are refused, and depth, size and
// element count are bounded.
#pragma once

#include <hypersdk/error.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hypersdk::vsphere {

struct XmlElement {
    std::string name;  // local name, namespace dropped
    std::vector<std::pair<std::string, std::string>> attributes;  // local names
    std::string text;  // character data directly inside this element
    std::vector<XmlElement> children;

    // First child with this local name, or nullptr.
    [[nodiscard]] const XmlElement *child(std::string_view local) const noexcept;
    // Text of the first child with this name ("" when absent).
    [[nodiscard]] std::string child_text(std::string_view local) const;
    [[nodiscard]] std::vector<const XmlElement *> children_named(std::string_view local) const;
    // Attribute by local name, "xsi:type" for the schema-instance one ("" when absent).
    [[nodiscard]] std::string attribute(std::string_view local) const;
    // The xsi:type of this element without its prefix ("VirtualDisk"), "" when none.
    [[nodiscard]] std::string xsi_type() const;
    // Follows a dotted path of child names: find("config.hardware.memoryMB").
    [[nodiscard]] const XmlElement *find(std::string_view dotted) const noexcept;
};

struct XmlLimits {
    std::size_t max_bytes = 256u << 20;
    std::size_t max_depth = 64;
    std::size_t max_elements = 4u << 20;
};

// corrupt-free wording: failures are remote_error ("malformed XML from the server: ...").
Result<XmlElement> parse_xml(std::string_view document, const XmlLimits &limits = {});

// Escapes &, <, >, " and ' for text and attribute values. Control characters other than tab,
// newline and carriage return cannot appear in XML 1.0 and are refused.
Result<std::string> xml_escape(std::string_view text);

}  // namespace hypersdk::vsphere
