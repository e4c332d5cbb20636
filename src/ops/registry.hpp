// The registry's internal side: each operation's compiled schemas and handler.
#pragma once

#include <hypersdk/ops.hpp>

#include "ops/context.hpp"
#include "ops/schema.hpp"

namespace hypersdk::ops {

struct Entry {
    OperationInfo info;
    Schema request;
    Schema result;
    Handler handler;
};

// nullptr when there is no such operation.
const Entry *find_entry(std::string_view name);
// Fails when the embedded api/ and the handler table do not fit together (a build defect).
Result<void> registry_status();
// api/common.json's definitions (for schemas that refer to them, like a provider's config).
const nlohmann::json &common_definitions();

}  // namespace hypersdk::ops
