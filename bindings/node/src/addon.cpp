// Module entry: per-environment data, version functions, and registration of every part.
#include "addon.hpp"

namespace hsdk_node {

AddonData &addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

namespace {

Napi::Value version(const Napi::CallbackInfo &info) { return Napi::String::New(info.Env(), hsdk_version()); }

Napi::Value version_number(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), hsdk_version_number()); }

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
    // Freed by Node when the environment goes away (default finalizer deletes it).
    env.SetInstanceData(new AddonData());
    exports.Set("version", Napi::Function::New(env, version, "version"));
    exports.Set("versionNumber", Napi::Function::New(env, version_number, "versionNumber"));
    init_errors(env, exports);
    init_cancel(env, exports);
    init_image(env, exports);
    init_jobs(env, exports);
    init_vm(env, exports);
    return exports;
}

}  // namespace hsdk_node

// The macro pastes the name into an identifier, so it needs an unqualified one.
static Napi::Object init_module(Napi::Env env, Napi::Object exports) { return hsdk_node::init(env, exports); }

NODE_API_MODULE(hypersdk, init_module)
