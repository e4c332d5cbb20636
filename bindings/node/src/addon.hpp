// Shared declarations of the native half of the addon. Everything here speaks only the C ABI
// (<hypersdk.h>); the JavaScript half (lib/) validates arguments and shapes the results.
#pragma once

#include <hypersdk.h>

#include <napi.h>

namespace hsdk_node {

// Per-environment state (the main thread and each worker_threads Worker have their own).
struct AddonData {
    Napi::FunctionReference error_class;   // HypersdkError, handed over by lib/errors.js
    Napi::FunctionReference image_class;   // NativeImage, instantiated when an open completes
};

AddonData &addon_data(Napi::Env env);

// The module's initialiser.
Napi::Object init(Napi::Env env, Napi::Object exports);

// Each file registers its functions and classes on the module's exports.
void init_errors(Napi::Env env, Napi::Object exports);
void init_cancel(Napi::Env env, Napi::Object exports);
void init_image(Napi::Env env, Napi::Object exports);
void init_jobs(Napi::Env env, Napi::Object exports);
void init_vm(Napi::Env env, Napi::Object exports);

}  // namespace hsdk_node
