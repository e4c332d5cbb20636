#include <hypersdk/error.hpp>

namespace hypersdk {

std::string_view errc_name(Errc code) noexcept {
    switch (code) {
    case Errc::ok: return "ok";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::unsupported: return "unsupported";
    case Errc::corrupt_image: return "corrupt_image";
    case Errc::io_error: return "io_error";
    case Errc::no_space: return "no_space";
    case Errc::network_error: return "network_error";
    case Errc::tls_error: return "tls_error";
    case Errc::auth_failed: return "auth_failed";
    case Errc::permission_denied: return "permission_denied";
    case Errc::timeout: return "timeout";
    case Errc::cancelled: return "cancelled";
    case Errc::checksum_mismatch: return "checksum_mismatch";
    case Errc::remote_error: return "remote_error";
    case Errc::conflict: return "conflict";
    case Errc::internal: return "internal";
    case Errc::no_memory: return "no_memory";
    }
    return "unknown";
}

Error Error::with_context(std::string_view context) const {
    Error copy{code, std::string(context)};
    copy.message += ": ";
    copy.message += message;
    return copy;
}

}  // namespace hypersdk
