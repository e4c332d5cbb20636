#include "ops/schema.hpp"

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <stdexcept>

namespace hypersdk::ops {
namespace {

using json = nlohmann::json;

constexpr std::string_view common_prefix = "common.json#/definitions/";
constexpr std::string_view local_prefix = "#/definitions/";

void collect_common_refs(json &node, std::set<std::string> &names) {
    if (node.is_object()) {
        if (auto it = node.find("$ref"); it != node.end() && it->is_string()) {
            const std::string ref = *it;
            if (ref.rfind(common_prefix, 0) == 0) {
                names.insert(ref.substr(common_prefix.size()));
                *it = std::string(local_prefix) + ref.substr(common_prefix.size());
            } else if (ref.rfind(local_prefix, 0) == 0) {
                names.insert(ref.substr(local_prefix.size()));
            }
        }
        for (auto &[k, v] : node.items()) collect_common_refs(v, names);
    } else if (node.is_array()) {
        for (auto &v : node) collect_common_refs(v, names);
    }
}

// Resolves a local $ref ("#/definitions/x") against the schema's root.
const json &resolve(const json &root, const json &node) {
    const json *n = &node;
    for (int hops = 0; hops < 32 && n->is_object(); ++hops) {
        auto it = n->find("$ref");
        if (it == n->end() || !it->is_string()) break;
        const std::string ref = *it;
        if (ref.rfind(local_prefix, 0) != 0) break;
        const auto defs = root.find("definitions");
        if (defs == root.end()) break;
        const auto d = defs->find(ref.substr(local_prefix.size()));
        if (d == defs->end()) break;
        n = &*d;
    }
    return *n;
}

// Every schema a value at `tokens` may have to satisfy (through properties, items, additional
// properties and oneOf/anyOf/allOf branches).
void schemas_at(const json &root, const json &node, const std::vector<std::string> &tokens, std::size_t depth,
                std::vector<const json *> &out) {
    const json &s = resolve(root, node);
    if (!s.is_object()) return;
    for (const char *combiner : {"oneOf", "anyOf", "allOf"})
        if (auto it = s.find(combiner); it != s.end() && it->is_array())
            for (const auto &branch : *it) schemas_at(root, branch, tokens, depth, out);
    if (depth == tokens.size()) {
        out.push_back(&s);
        return;
    }
    const std::string &t = tokens[depth];
    if (auto p = s.find("properties"); p != s.end() && p->is_object() && p->contains(t)) {
        schemas_at(root, (*p)[t], tokens, depth + 1, out);
    } else if (auto a = s.find("additionalProperties"); a != s.end() && a->is_object()) {
        schemas_at(root, *a, tokens, depth + 1, out);
    }
    if (auto i = s.find("items"); i != s.end() && i->is_object() && !t.empty() &&
                                  std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
        schemas_at(root, *i, tokens, depth + 1, out);
}

std::string type_name(const json &v) {
    switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "value";
    }
}

std::string join_or(const std::vector<std::string> &items) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += i + 1 == items.size() ? " or " : ", ";
        out += items[i];
    }
    return out;
}

const json *value_at(const json &instance, const std::vector<std::string> &tokens) {
    const json *v = &instance;
    for (const auto &t : tokens) {
        if (v->is_object()) {
            auto it = v->find(t);
            if (it == v->end()) return nullptr;
            v = &*it;
        } else if (v->is_array()) {
            std::size_t i = 0;
            try {
                i = std::stoul(t);
            } catch (const std::exception &) {
                return nullptr;
            }
            if (i >= v->size()) return nullptr;
            v = &(*v)[i];
        } else {
            return nullptr;
        }
    }
    return v;
}

std::string where(const std::vector<std::string> &tokens) { return tokens.empty() ? std::string("request") : json_pointer(tokens); }

struct Problem {
    std::size_t depth = 0;  // of the value valijson complained about
    std::vector<std::string> tokens;
    int rank = 0;  // higher wins among problems at the same depth
    std::string message;
};

// Turns one of valijson's messages into ours, or nothing for the wrappers it adds around them.
std::optional<Problem> translate(const json &root, const json &instance, const valijson::ValidationResults::Error &e) {
    Problem p;
    for (std::size_t i = 1; i < e.context.size(); ++i) {  // [0] is "<root>"
        const std::string &c = e.context[i];
        p.tokens.push_back(c.size() >= 2 && c.front() == '[' && c.back() == ']' ? c.substr(1, c.size() - 2) : c);
    }
    const std::string &d = e.description;
    // The last quoted name of the message: "... constraints: 'name'."
    auto quoted = [&]() {
        const auto b = d.rfind('\'');
        const auto a = b == std::string::npos || b == 0 ? std::string::npos : d.rfind('\'', b - 1);
        return a != std::string::npos ? d.substr(a + 1, b - a - 1) : std::string();
    };
    p.depth = p.tokens.size();
    std::vector<const json *> here;
    schemas_at(root, root, p.tokens, 0, here);
    if (d.rfind("Object contains a property that could not be validated", 0) == 0) {
        p.tokens.push_back(quoted());
        p.rank = 5;
        p.message = where(p.tokens) + ": unknown field";
    } else if (d.rfind("Value type not permitted", 0) == 0) {
        std::vector<std::string> types;
        for (const json *s : here) {
            auto t = s->find("type");
            if (t == s->end()) continue;
            if (t->is_string()) types.push_back(*t);
            else if (t->is_array())
                for (const auto &x : *t) types.push_back(x);
        }
        std::sort(types.begin(), types.end());
        types.erase(std::unique(types.begin(), types.end()), types.end());
        const json *v = value_at(instance, p.tokens);
        p.rank = 4;
        p.message = where(p.tokens) + ": expected " + (types.empty() ? std::string("another type") : join_or(types)) +
                    (v ? ", got " + type_name(*v) : std::string());
    } else if (d.rfind("Failed to match against any enum values", 0) == 0) {
        std::vector<std::string> values;
        for (const json *s : here)
            if (auto en = s->find("enum"); en != s->end() && en->is_array())
                for (const auto &x : *en) values.push_back(x.is_string() ? x.get<std::string>() : x.dump());
        const json *v = value_at(instance, p.tokens);
        p.rank = 3;
        p.message = where(p.tokens) + ": expected one of " + join_or(values) +
                    (v ? ", got " + (v->is_string() ? "'" + v->get<std::string>() + "'" : v->dump()) : std::string());
    } else if (d.rfind("Missing required property", 0) == 0) {
        p.tokens.push_back(quoted());
        p.rank = 2;
        p.message = where(p.tokens) + ": missing required field";
    } else if (d.rfind("Failed to validate against exactly one child schema", 0) == 0 ||
               d.rfind("Failed to validate against any child schemas allowed by oneOf", 0) == 0) {
        // A oneOf of "required" alternatives: one of these fields and not several.
        std::vector<std::string> names;
        for (const json *s : here)
            if (auto of = s->find("oneOf"); of != s->end() && of->is_array())
                for (const auto &b : *of)
                    if (b.is_object() && b.contains("required") && b["required"].is_array() && b["required"].size() == 1)
                        names.push_back(b["required"][0]);
        if (names.empty()) return std::nullopt;
        p.rank = 6;  // wins over the "missing required" of each alternative
        p.message = where(p.tokens) + ": give exactly one of " + join_or(names);
    } else if (d.rfind("Failed to validate", 0) == 0 || d.rfind("Cannot validate item", 0) == 0) {
        return std::nullopt;  // a wrapper around a more precise message
    } else {
        std::string text = d;
        if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
        if (!text.empty() && text.back() == '.') text.pop_back();
        p.rank = 1;
        p.message = where(p.tokens) + ": " + text;
    }
    return p;
}

void fill_defaults(const json &root, const json &node, json &instance) {
    const json &s = resolve(root, node);
    if (!s.is_object() || !instance.is_object()) return;
    auto props = s.find("properties");
    if (props == s.end() || !props->is_object()) return;
    for (const auto &[name, sub] : props->items()) {
        const json &ps = resolve(root, sub);
        auto it = instance.find(name);
        if (it == instance.end()) {
            if (ps.is_object() && ps.contains("default")) instance[name] = ps["default"];
        } else if (it->is_object()) {
            fill_defaults(root, ps, *it);
        }
    }
}

void redact_into(const json &root, const json &node, json &instance) {
    const json &s = resolve(root, node);
    if (!s.is_object()) return;
    for (const char *combiner : {"oneOf", "anyOf", "allOf"})
        if (auto it = s.find(combiner); it != s.end() && it->is_array())
            for (const auto &branch : *it) redact_into(root, branch, instance);
    if (instance.is_object()) {
        auto props = s.find("properties");
        for (auto &[name, value] : instance.items()) {
            const json *sub = nullptr;
            if (props != s.end() && props->is_object() && props->contains(name)) sub = &(*props)[name];
            else if (auto a = s.find("additionalProperties"); a != s.end() && a->is_object()) sub = &*a;
            if (sub == nullptr) continue;
            const json &ps = resolve(root, *sub);
            if (ps.is_object() && ps.value("writeOnly", false)) value = "********";
            else redact_into(root, ps, value);
        }
    } else if (instance.is_array()) {
        if (auto items = s.find("items"); items != s.end() && items->is_object())
            for (auto &v : instance) redact_into(root, *items, v);
    }
}

}  // namespace

struct Schema::Compiled {
    valijson::Schema schema;
};

Schema::Schema() = default;
Schema::Schema(Schema &&) noexcept = default;
Schema &Schema::operator=(Schema &&) noexcept = default;
Schema::~Schema() = default;

Result<Schema> Schema::compile(nlohmann::json document, std::string_view what) {
    Schema s;
    s.document_ = std::move(document);
    s.compiled_ = std::make_unique<Compiled>();
    try {
        valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
        valijson::adapters::NlohmannJsonAdapter adapter(s.document_);
        parser.populateSchema(adapter, s.compiled_->schema);
    } catch (const std::exception &e) {
        return fail(Errc::internal, fmt::format("schema of {} does not compile: {}", what, e.what()));
    }
    return s;
}

Result<void> Schema::validate(const nlohmann::json &instance, std::string_view what) const {
    valijson::Validator validator(valijson::Validator::kStrongTypes);
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(instance);
    if (validator.validate(compiled_->schema, target, &results)) return success();
    std::optional<Problem> best;
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
        auto p = translate(document_, instance, e);
        if (!p) continue;
        if (!best || p->depth > best->depth || (p->depth == best->depth && p->rank > best->rank))
            best = std::move(p);
    }
    const std::string message = best ? best->message : std::string("request does not match the schema");
    return fail(Errc::invalid_argument, fmt::format("invalid {}: {}", what, message));
}

void Schema::apply_defaults(nlohmann::json &instance) const { fill_defaults(document_, document_, instance); }

nlohmann::json Schema::redact(const nlohmann::json &instance) const {
    json copy = instance;
    redact_into(document_, document_, copy);
    return copy;
}

nlohmann::json inline_common_refs(nlohmann::json schema, const nlohmann::json &common_definitions) {
    std::set<std::string> needed;
    collect_common_refs(schema, needed);
    json defs = json::object();
    // Definitions refer to each other: pull them in until nothing new turns up.
    std::set<std::string> done;
    while (true) {
        std::set<std::string> more;
        for (const auto &n : needed) {
            if (done.count(n) || !common_definitions.contains(n)) continue;
            json d = common_definitions[n];
            collect_common_refs(d, more);
            defs[n] = std::move(d);
            done.insert(n);
        }
        bool grew = false;
        for (const auto &m : more)
            if (!done.count(m) && needed.insert(m).second) grew = true;
        if (!grew) break;
    }
    if (!defs.empty()) schema["definitions"] = std::move(defs);
    return schema;
}

std::string json_pointer(const std::vector<std::string> &tokens) {
    std::string out;
    for (const auto &t : tokens) {
        out += '/';
        for (char c : t) {
            if (c == '~') out += "~0";
            else if (c == '/') out += "~1";
            else out += c;
        }
    }
    return out;
}

}  // namespace hypersdk::ops
