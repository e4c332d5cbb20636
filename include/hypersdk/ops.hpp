// The operation registry: every capability of the library described once - a dotted name, a request
// and a result schema (JSON Schema draft 7, from the repository's api/ folder), the errors it can
// return and whether it runs long. Requests are plain JSON, so any of them can be stored, sent over a
// network and replayed. Operations run as jobs (<hypersdk/job.hpp>); the C ABI, Python, Node,
// `hsdk run` and the OpenAPI document all reach them through this one table.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace hypersdk {

struct OperationInfo {
    std::string name;         // "image.convert"
    std::string summary;      // one line
    std::string description;  // what it does, what it leaves behind on failure
    bool long_running = false;
    std::vector<Errc> errors;        // codes it can fail with (besides internal and no_memory)
    nlohmann::json request_schema;   // self-contained: its $refs point into its own "definitions"
    nlohmann::json result_schema;
};

// Every operation, sorted by name.
[[nodiscard]] const std::vector<OperationInfo> &operations();
// nullptr when there is no such operation.
[[nodiscard]] const OperationInfo *find_operation(std::string_view name);
// {"version", "operations": [{name, summary, description, long_running, errors, request, result}]}:
// what hsdk_ops_json() returns and `hsdk ops --json` prints.
[[nodiscard]] nlohmann::json operations_json();

// The OpenAPI 3.1 document of every operation under /v1/ops/{name} (api/openapi.json, generated
// from the same descriptions by tools/gen_api and compiled in): what hypervisord serves.
[[nodiscard]] std::string_view openapi_json() noexcept;

// Checks a request against its schema and fills in the schema's defaults. An unknown operation or a
// bad request fails with invalid_argument naming the operation, or the field by JSON pointer:
// "invalid request of image.convert: /threads: expected integer, got string".
Result<nlohmann::json> prepare_request(std::string_view operation, const nlohmann::json &request);
// Checks a result against the operation's result schema (the tests hold every handler to it).
Result<void> validate_result(std::string_view operation, const nlohmann::json &result);
// The request with every secret field (writeOnly in the schema: passwords) replaced by "********":
// the form jobs keep, log and show.
[[nodiscard]] nlohmann::json redact_request(std::string_view operation, const nlohmann::json &request);

}  // namespace hypersdk
