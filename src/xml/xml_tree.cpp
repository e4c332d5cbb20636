#include "xml/xml_tree.hpp"

#include <expat.h>
#include <fmt/format.h>

#include <cstring>

namespace hypersdk::xml {

std::string trim(std::string_view s) {
    const char *ws = " \t\r\n";
    const auto b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    const auto e = s.find_last_not_of(ws);
    return std::string(s.substr(b, e - b + 1));
}

const Element *Element::child(std::string_view local_name, std::string_view ns_uri) const {
    for (const auto &c : children)
        if (c.local == local_name && (ns_uri.empty() || c.ns == ns_uri)) return &c;
    return nullptr;
}

std::vector<const Element *> Element::children_named(std::string_view local_name, std::string_view ns_uri) const {
    std::vector<const Element *> out;
    for (const auto &c : children)
        if (c.local == local_name && (ns_uri.empty() || c.ns == ns_uri)) out.push_back(&c);
    return out;
}

std::string Element::attribute(std::string_view name) const {
    const bool want_xsi = name.rfind("xsi:", 0) == 0;
    if (want_xsi) name.remove_prefix(4);
    for (const auto &a : attributes)
        if (a.local == name && (a.ns == xsi_namespace) == want_xsi) return a.value;
    return {};
}

std::string Element::xsi_type() const {
    std::string t = attribute("xsi:type");
    const auto colon = t.find(':');
    return colon == std::string::npos ? t : t.substr(colon + 1);
}

const Element *Element::path(std::string_view dotted) const {
    const Element *e = this;
    while (e != nullptr && !dotted.empty()) {
        const auto dot = dotted.find('.');
        e = e->child(dotted.substr(0, dot));
        dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
    }
    return e;
}

std::optional<std::string_view> Element::attr(std::string_view local_name, std::string_view ns_uri) const {
    for (const auto &a : attributes)
        if (a.local == local_name && (ns_uri.empty() || a.ns == ns_uri)) return std::string_view(a.value);
    return std::nullopt;
}

std::string Element::child_text(std::string_view local_name) const {
    const Element *c = child(local_name);
    return c ? trim(c->text) : std::string();
}

const Element *Element::find_descendant(std::string_view local_name) const {
    for (const auto &c : children) {
        if (c.local == local_name) return &c;
        if (const Element *d = c.find_descendant(local_name)) return d;
    }
    return nullptr;
}

namespace {

constexpr char ns_sep = '\x1f';  // Expat joins "uri<sep>local"; a control char cannot occur in names

void split_name(const char *qname, std::string &ns, std::string &local) {
    const char *sep = std::strchr(qname, ns_sep);
    if (sep == nullptr) {
        ns.clear();
        local = qname;
    } else {
        ns.assign(qname, static_cast<std::size_t>(sep - qname));
        local = sep + 1;
    }
}

struct Builder {
    XML_Parser parser = nullptr;
    const Limits *limits = nullptr;
    Element root;
    bool have_root = false;
    // Pointers stay valid: an element's vector only grows while it is the innermost open one,
    // and its open ancestors sit in vectors that do not change meanwhile.
    std::vector<Element *> stack;
    std::size_t elements = 0;
    std::string error;  // set when we stop the parser ourselves

    void stop(std::string why) {
        if (error.empty()) error = std::move(why);
        XML_StopParser(parser, XML_FALSE);
    }
};

void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts) {
    auto *b = static_cast<Builder *>(ud);
    if (!b->error.empty()) return;
    if (++b->elements > b->limits->max_elements) return b->stop(fmt::format("more than {} elements", b->limits->max_elements));
    if (b->stack.size() >= b->limits->max_depth) return b->stop(fmt::format("nesting deeper than {} levels", b->limits->max_depth));
    Element *el;
    if (b->stack.empty()) {
        if (b->have_root) return b->stop("more than one root element");
        b->have_root = true;
        el = &b->root;
    } else {
        el = &b->stack.back()->children.emplace_back();
    }
    split_name(name, el->ns, el->local);
    el->line = static_cast<std::size_t>(XML_GetCurrentLineNumber(b->parser));
    for (std::size_t i = 0; atts[i] != nullptr; i += 2) {
        Attribute a;
        split_name(atts[i], a.ns, a.local);
        a.value = atts[i + 1];
        el->attributes.push_back(std::move(a));
    }
    b->stack.push_back(el);
}

void XMLCALL on_end(void *ud, const XML_Char *) {
    auto *b = static_cast<Builder *>(ud);
    if (!b->stack.empty()) b->stack.pop_back();
}

void XMLCALL on_text(void *ud, const XML_Char *s, int len) {
    auto *b = static_cast<Builder *>(ud);
    if (b->stack.empty() || !b->error.empty()) return;
    auto &text = b->stack.back()->text;
    if (text.size() + static_cast<std::size_t>(len) > b->limits->max_text)
        return b->stop(fmt::format("an element's text exceeds {} bytes", b->limits->max_text));
    text.append(s, static_cast<std::size_t>(len));
}

void XMLCALL on_doctype(void *ud, const XML_Char *, const XML_Char *, const XML_Char *, int) {
    static_cast<Builder *>(ud)->stop("document type declarations are not allowed");
}

void XMLCALL on_entity_decl(void *ud, const XML_Char *, int, const XML_Char *, int, const XML_Char *, const XML_Char *,
                            const XML_Char *, const XML_Char *) {
    static_cast<Builder *>(ud)->stop("entity declarations are not allowed");
}

}  // namespace

Result<Element> parse(std::string_view document, std::string_view what, const Limits &limits) {
    auto failure = [&](std::string message) {
        return fail(limits.error_code, (limits.error_code == Errc::corrupt_image ? "corrupt image: " : "") + message);
    };
    if (document.size() > limits.max_bytes)
        return failure(fmt::format("{} is {} bytes, more than the {} allowed", what, document.size(), limits.max_bytes));
    Builder b;
    b.limits = &limits;
    b.parser = XML_ParserCreateNS(nullptr, ns_sep);
    if (b.parser == nullptr) return fail(Errc::no_memory, "cannot create an XML parser");
    XML_SetUserData(b.parser, &b);
    XML_SetElementHandler(b.parser, on_start, on_end);
    XML_SetCharacterDataHandler(b.parser, on_text);
    XML_SetStartDoctypeDeclHandler(b.parser, on_doctype);
    XML_SetEntityDeclHandler(b.parser, on_entity_decl);
    // Never fetch anything external.
    XML_SetParamEntityParsing(b.parser, XML_PARAM_ENTITY_PARSING_NEVER);
    const auto status = XML_Parse(b.parser, document.data(), static_cast<int>(document.size()), XML_TRUE);
    std::string message;
    if (!b.error.empty()) {
        message = fmt::format("{}: {} (line {})", what, b.error, XML_GetCurrentLineNumber(b.parser));
    } else if (status != XML_STATUS_OK) {
        message = fmt::format("{}: malformed XML: {} (line {}, column {})", what, XML_ErrorString(XML_GetErrorCode(b.parser)),
                              XML_GetCurrentLineNumber(b.parser), XML_GetCurrentColumnNumber(b.parser));
    }
    XML_ParserFree(b.parser);
    if (!message.empty()) return failure(message);
    if (!b.have_root) return failure(fmt::format("{}: no root element", what));
    return std::move(b.root);
}

Result<std::string> escape_strict(std::string_view text) {
    for (unsigned char c : text)
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return fail(Errc::invalid_argument, fmt::format("text contains control character {:#04x}, which XML cannot carry", c));
    return escape(text);
}

std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default: out += c;
        }
    }
    return out;
}

}  // namespace hypersdk::xml
