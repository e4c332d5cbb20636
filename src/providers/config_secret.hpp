// Secrets in provider configs: given as KEY (write-only in the schema), or named by KEY_env (an
// environment variable) or KEY_file (the first line of a file), so that stored job requests can
// hold the name instead of the secret.
#pragma once

#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <string>

namespace hypersdk {

// The secret under `key`, `key`_env or `key`_file; empty when none is given.
Result<std::string> config_secret(const nlohmann::json &config, const std::string &key);

}  // namespace hypersdk
