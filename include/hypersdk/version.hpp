// Compile-time and run-time versions. The numbers live in <hypersdk.h> (one source of truth).
#pragma once

#include <hypersdk.h>

#include <string_view>

namespace hypersdk {

inline constexpr int version_major = HSDK_VERSION_MAJOR;
inline constexpr int version_minor = HSDK_VERSION_MINOR;
inline constexpr int version_patch = HSDK_VERSION_PATCH;

// The version of the library linked at run time, e.g. "0.1.0".
std::string_view version() noexcept;

}  // namespace hypersdk
