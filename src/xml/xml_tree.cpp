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
        if (c->local == local_name && (ns_uri.empty() || c->ns == ns_uri)) return c.get();
    return nullptr;
}

std::vector<const Element *> Element::children_named(std::string_view local_name, std::string_view ns_uri) const {
    std::vector<const Element *> out;
    for (const auto &c : children)
        if (c->local == local_name && (ns_uri.empty() || c->ns == ns_uri)) out.push_back(c.get());
    return out;
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

const Element *Element::find(std::string_view local_name) const {
    for (const auto &c : children) {
        if (c->local == local_name) return c.get();
        if (const Element *d = c->find(local_name)) return d;
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
    std::unique_ptr<Element> root;
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
    auto el = std::make_unique<Element>();
    split_name(name, el->ns, el->local);
    el->line = static_cast<std::size_t>(XML_GetCurrentLineNumber(b->parser));
    for (std::size_t i = 0; atts[i] != nullptr; i += 2) {
        Attribute a;
        split_name(atts[i], a.ns, a.local);
        a.value = atts[i + 1];
        el->attributes.push_back(std::move(a));
    }
    Element *raw = el.get();
    if (b->stack.empty()) {
        if (b->root) return b->stop("more than one root element");
        b->root = std::move(el);
    } else {
        b->stack.back()->children.push_back(std::move(el));
    }
    b->stack.push_back(raw);
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

Result<std::unique_ptr<Element>> parse(std::string_view document, std::string_view what, const Limits &limits) {
    if (document.size() > limits.max_bytes)
        return fail_corrupt(fmt::format("{} is {} bytes, more than the {} allowed", what, document.size(), limits.max_bytes));
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
    if (!message.empty()) return fail_corrupt(message);
    if (!b.root) return fail_corrupt(fmt::format("{}: no root element", what));
    return std::move(b.root);
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
