#include <hypersdk/version.hpp>

#define HSDK_STR2(x) #x
#define HSDK_STR(x) HSDK_STR2(x)

namespace hypersdk {

std::string_view version() noexcept {
    return HSDK_STR(HSDK_VERSION_MAJOR) "." HSDK_STR(HSDK_VERSION_MINOR) "." HSDK_STR(HSDK_VERSION_PATCH);
}

}  // namespace hypersdk
