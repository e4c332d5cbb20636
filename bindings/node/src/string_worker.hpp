// The common case of a long call: one C function that hands back an allocated string (JSON, XML
// or a name), resolved as a JavaScript string.
#pragma once

#include "values.hpp"
#include "worker.hpp"

#include <functional>

namespace hsdk_node {

// Runs one C call that hands back an allocated string (JSON or a name) and resolves with it.
class StringWorker : public PromiseWorker {
public:
    using Call = std::function<hsdk_status(char **)>;
    StringWorker(Napi::Env env, const char *name, Call call) : PromiseWorker(env, name), call_(std::move(call)) {}

private:
    hsdk_status Run() override {
        char *out = nullptr;
        const hsdk_status status = call_(&out);
        result_ = take_string(out);
        return status;
    }
    Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, result_); }

    Call call_;
    std::string result_;
};

}  // namespace hsdk_node
