// Library failures as JavaScript HypersdkError objects.
//
// hsdk_last_error() is thread-local: a worker must copy it on its own thread right after the
// failing call (capture_failure), long before the result reaches the JavaScript thread.
#pragma once

#include "addon.hpp"

#include <string>

namespace hsdk_node {

struct Failure {
    hsdk_status status = HSDK_OK;
    std::string message;
};

// Copies the calling thread's last error for a call that returned `status`.
Failure capture_failure(hsdk_status status);

// A HypersdkError (message, .code = hsdk_status_name(status), .status) for the JavaScript side.
Napi::Value make_error(Napi::Env env, const Failure &failure);

// Throws a HypersdkError into JavaScript (through a C++ Napi::Error, caught by node-addon-api).
[[noreturn]] void throw_failure(Napi::Env env, const Failure &failure);
[[noreturn]] void throw_invalid_argument(Napi::Env env, const std::string &message);

}  // namespace hsdk_node
