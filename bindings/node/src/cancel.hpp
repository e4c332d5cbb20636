// CancelToken: an hsdk_cancel owned jointly by JavaScript and the operations using it, so a token
// collected by the garbage collector never disappears under a running conversion.
#pragma once

#include "addon.hpp"

#include <memory>

namespace hsdk_node {

using CancelHandle = std::shared_ptr<hsdk_cancel>;

// A new token (throws a HypersdkError when the library cannot make one).
CancelHandle new_cancel_handle(Napi::Env env);

// The token behind an optional CancelToken argument; a fresh one when undefined, so that every
// operation can be cancelled from its progress callback.
CancelHandle cancel_handle_from(Napi::Env env, const Napi::Value &value);

}  // namespace hsdk_node
