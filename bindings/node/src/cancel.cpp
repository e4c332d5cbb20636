// The CancelToken class. request() may be called while an operation runs on a pool thread:
// hsdk_cancel_request is safe from any thread.
#include "cancel.hpp"

#include "errors.hpp"

namespace hsdk_node {
namespace {

// Marks objects that really are CancelTokens (a prototype can be faked, a type tag cannot).
constexpr napi_type_tag kCancelTag = {0x6873646b63616e63ULL, 0x656c746f6b656e31ULL};

class CancelToken : public Napi::ObjectWrap<CancelToken> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "CancelToken",
                           {InstanceMethod<&CancelToken::Request>("request"),
                            InstanceAccessor<&CancelToken::Requested>("requested")});
    }

    explicit CancelToken(const Napi::CallbackInfo &info) : Napi::ObjectWrap<CancelToken>(info) {
        handle_ = new_cancel_handle(info.Env());
        info.This().As<Napi::Object>().TypeTag(&kCancelTag);
    }

    const CancelHandle &handle() const { return handle_; }

private:
    Napi::Value Request(const Napi::CallbackInfo &info) {
        hsdk_cancel_request(handle_.get());
        return info.Env().Undefined();
    }

    Napi::Value Requested(const Napi::CallbackInfo &info) {
        return Napi::Boolean::New(info.Env(), hsdk_cancel_requested(handle_.get()) != 0);
    }

    CancelHandle handle_;
};

}  // namespace

CancelHandle new_cancel_handle(Napi::Env env) {
    hsdk_cancel *raw = nullptr;
    const hsdk_status status = hsdk_cancel_new(&raw);
    if (status != HSDK_OK) throw_failure(env, capture_failure(status));
    return CancelHandle(raw, hsdk_cancel_free);
}

CancelHandle cancel_handle_from(Napi::Env env, const Napi::Value &value) {
    if (value.IsUndefined() || value.IsNull()) return new_cancel_handle(env);
    if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kCancelTag))
        throw_invalid_argument(env, "cancel must be a CancelToken");
    return CancelToken::Unwrap(value.As<Napi::Object>())->handle();
}

void init_cancel(Napi::Env env, Napi::Object exports) {
    exports.Set("CancelToken", CancelToken::Define(env));
}

}  // namespace hsdk_node
