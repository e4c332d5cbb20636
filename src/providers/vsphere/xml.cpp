#include "providers/vsphere/xml.hpp"

#include <expat.h>
#include <fmt/format.h>

#include <memory>

namespace hypersdk::vsphere {
namespace {

std::string_view local_part(std::string_view name) {
    // XML_ParserCreateNS joins "uri" and "local" with '\x1f'.
    const auto sep = name.rfind('\x1f');
    return sep == std::string_view::npos ? name : name.substr(sep + 1);
}

struct ParseState {
    XML_Parser parser = nullptr;
    const XmlLimits *limits = nullptr;
    XmlElement root;
    std::vector<XmlElement *> stack;
    std::size_t elements = 0;
    bool have_root = false;
    std::string error;

    void stop(std::string why) {
        if (error.empty()) error = std::move(why);
        XML_StopParser(parser, XML_FALSE);
    }
};

void on_start(void *user, const XML_Char *name, const XML_Char **atts) {
    auto *s = static_cast<ParseState *>(user);
    if (!s->error.empty()) return;
    if (++s->elements > s->limits->max_elements) return s->stop("too many elements");
    if (s->stack.size() >= s->limits->max_depth) return s->stop("elements nested too deeply");
    XmlElement *e;
    if (s->stack.empty()) {
        if (s->have_root) return s->stop("more than one root element");
        s->have_root = true;
        e = &s->root;
    } else {
        s->stack.back()->children.emplace_back();
        e = &s->stack.back()->children.back();
    }
    e->name = local_part(name);
    for (int i = 0; atts[i] != nullptr; i += 2) {
        // xsi:type and a managed object reference's plain "type" can sit on one element.
        const std::string_view full(atts[i]);
        const bool xsi = full.rfind("http://www.w3.org/2001/XMLSchema-instance\x1f", 0) == 0;
        e->attributes.emplace_back((xsi ? "xsi:" : "") + std::string(local_part(full)), atts[i + 1]);
    }
    s->stack.push_back(e);
}

void on_end(void *user, const XML_Char *) {
    auto *s = static_cast<ParseState *>(user);
    if (!s->stack.empty()) s->stack.pop_back();
}

void on_text(void *user, const XML_Char *text, int len) {
    auto *s = static_cast<ParseState *>(user);
    if (!s->stack.empty()) s->stack.back()->text.append(text, static_cast<std::size_t>(len));
}

// SOAP never needs a DTD; refusing it refuses internal and external entities alike.
void on_doctype(void *user, const XML_Char *, const XML_Char *, const XML_Char *, int) {
    static_cast<ParseState *>(user)->stop("document type declarations are not accepted");
}

void on_entity(void *user, const XML_Char *, int, const XML_Char *, int, const XML_Char *, const XML_Char *,
               const XML_Char *, const XML_Char *) {
    static_cast<ParseState *>(user)->stop("entity declarations are not accepted");
}

}  // namespace

const XmlElement *XmlElement::child(std::string_view local) const noexcept {
    for (const auto &c : children)
        if (c.name == local) return &c;
    return nullptr;
}

std::string XmlElement::child_text(std::string_view local) const {
    const auto *c = child(local);
    return c ? c->text : std::string();
}

std::vector<const XmlElement *> XmlElement::children_named(std::string_view local) const {
    std::vector<const XmlElement *> out;
    for (const auto &c : children)
        if (c.name == local) out.push_back(&c);
    return out;
}

std::string XmlElement::attribute(std::string_view local) const {
    for (const auto &[k, v] : attributes)
        if (k == local) return v;
    return {};
}

std::string XmlElement::xsi_type() const {
    const std::string t = attribute("xsi:type");
    const auto colon = t.find(':');
    return colon == std::string::npos ? t : t.substr(colon + 1);
}

const XmlElement *XmlElement::find(std::string_view dotted) const noexcept {
    const XmlElement *e = this;
    while (e != nullptr && !dotted.empty()) {
        const auto dot = dotted.find('.');
        e = e->child(dotted.substr(0, dot));
        dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
    }
    return e;
}

Result<XmlElement> parse_xml(std::string_view document, const XmlLimits &limits) {
    if (document.size() > limits.max_bytes)
        return fail(Errc::remote_error, fmt::format("malformed XML from the server: document larger than {} bytes", limits.max_bytes));
    std::unique_ptr<std::remove_pointer_t<XML_Parser>, void (*)(XML_Parser)> parser(XML_ParserCreateNS(nullptr, '\x1f'),
                                                                                  XML_ParserFree);
    if (!parser) return fail(Errc::no_memory, "cannot create an XML parser");
    ParseState s;
    s.parser = parser.get();
    s.limits = &limits;
    XML_SetUserData(parser.get(), &s);
    XML_SetElementHandler(parser.get(), on_start, on_end);
    XML_SetCharacterDataHandler(parser.get(), on_text);
    XML_SetStartDoctypeDeclHandler(parser.get(), on_doctype);
    XML_SetEntityDeclHandler(parser.get(), on_entity);
    XML_SetParamEntityParsing(parser.get(), XML_PARAM_ENTITY_PARSING_NEVER);
    // Fed in bounded pieces so that the int length Expat takes never overflows.
    constexpr std::size_t piece = 1u << 20;
    std::size_t pos = 0;
    do {
        const std::size_t n = std::min(piece, document.size() - pos);
        const bool last = pos + n == document.size();
        if (XML_Parse(parser.get(), document.data() + pos, static_cast<int>(n), last ? XML_TRUE : XML_FALSE) != XML_STATUS_OK) {
            std::string why = !s.error.empty() ? s.error : XML_ErrorString(XML_GetErrorCode(parser.get()));
            return fail(Errc::remote_error, fmt::format("malformed XML from the server: {} (line {})", why,
                                                        XML_GetCurrentLineNumber(parser.get())));
        }
        pos += n;
    } while (pos < document.size());
    if (!s.have_root) return fail(Errc::remote_error, "malformed XML from the server: no root element");
    return std::move(s.root);
}

Result<std::string> xml_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return fail(Errc::invalid_argument, "text contains a control character that XML cannot carry");
            out += c;
        }
    }
    return out;
}

}  // namespace hypersdk::vsphere
