// JSON Schema (draft 7) for operation requests and results: validation by valijson with messages
// that name the field by JSON pointer, schema defaults, and redaction of secret (writeOnly) fields.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace hypersdk::ops {

class Schema {
public:
    // `document` must be self-contained: its $refs point into its own "definitions".
    static Result<Schema> compile(nlohmann::json document, std::string_view what);
    Schema(Schema &&) noexcept;
    Schema &operator=(Schema &&) noexcept;
    ~Schema();

    [[nodiscard]] const nlohmann::json &document() const noexcept { return document_; }

    // invalid_argument naming the first problem: "/options/cluster_size: expected integer, got string".
    Result<void> validate(const nlohmann::json &instance, std::string_view what) const;
    // Fills in the schema's "default" of every absent property, in nested objects too.
    void apply_defaults(nlohmann::json &instance) const;
    // A copy with every writeOnly field (passwords, keys) replaced by "********".
    [[nodiscard]] nlohmann::json redact(const nlohmann::json &instance) const;

private:
    Schema();
    struct Compiled;
    nlohmann::json document_;
    std::unique_ptr<Compiled> compiled_;
};

// Replaces "common.json#/definitions/NAME" references by local ones and copies the definitions
// they need (transitively) into the schema's own "definitions".
nlohmann::json inline_common_refs(nlohmann::json schema, const nlohmann::json &common_definitions);

// "/a/b~1c" from path tokens.
std::string json_pointer(const std::vector<std::string> &tokens);

}  // namespace hypersdk::ops
