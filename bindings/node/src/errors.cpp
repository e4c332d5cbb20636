// HypersdkError construction and the status-name function.
#include "errors.hpp"

namespace hsdk_node {

Failure capture_failure(hsdk_status status) {
    const hsdk_error *e = hsdk_last_error();
    Failure f;
    f.status = status;
    // The message belongs to the failing call only when the codes agree; otherwise say what we know.
    if (e != nullptr && e->code == status && e->message != nullptr && *e->message != '\0')
        f.message = e->message;
    else
        f.message = std::string("libhypersdk call failed: ") + hsdk_status_name(status);
    return f;
}

Napi::Value make_error(Napi::Env env, const Failure &failure) {
    auto &data = addon_data(env);
    const char *code = hsdk_status_name(failure.status);
    if (!data.error_class.IsEmpty()) {
        return data.error_class.New({Napi::String::New(env, failure.message), Napi::String::New(env, code),
                                     Napi::Number::New(env, failure.status)});
    }
    // Only before lib/errors.js has registered its class (never in normal use).
    Napi::Error e = Napi::Error::New(env, failure.message);
    e.Set("code", Napi::String::New(env, code));
    e.Set("status", Napi::Number::New(env, failure.status));
    return e.Value();
}

void throw_failure(Napi::Env env, const Failure &failure) { throw Napi::Error(env, make_error(env, failure)); }

void throw_invalid_argument(Napi::Env env, const std::string &message) {
    throw_failure(env, Failure{HSDK_E_INVALID_ARGUMENT, message});
}

namespace {

Napi::Value set_error_class(const Napi::CallbackInfo &info) {
    if (info.Length() != 1 || !info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass(constructor)");
    addon_data(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
}

Napi::Value status_name(const Napi::CallbackInfo &info) {
    if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "statusName(status)");
    return Napi::String::New(info.Env(), hsdk_status_name(info[0].As<Napi::Number>().Int32Value()));
}

}  // namespace

void init_errors(Napi::Env env, Napi::Object exports) {
    exports.Set("setErrorClass", Napi::Function::New(env, set_error_class, "setErrorClass"));
    exports.Set("statusName", Napi::Function::New(env, status_name, "statusName"));
}

}  // namespace hsdk_node
