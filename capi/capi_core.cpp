// C ABI: version, status names, last error, logging, cancellation, hashing.
#include "capi_internal.hpp"

#include <hypersdk/cancel.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/version.hpp>

#include <cstring>

struct hsdk_cancel {
    hypersdk::CancelToken token;
};

namespace hypersdk::capi {
namespace {

struct LastError {
    std::string message;
    hsdk_error view{HSDK_OK, ""};
};

LastError &last_error() {
    thread_local LastError e;
    return e;
}

}  // namespace

hsdk_status set_error(const Error &error) noexcept { return set_error(error.code, error.message.c_str()); }

hsdk_status set_error(Errc code, const char *message) noexcept {
    auto &e = last_error();
    try {
        e.message = message;
    } catch (...) {
        e.message.clear();  // keep the code even when the text cannot be copied
    }
    e.view.code = to_status(code);
    e.view.message = e.message.c_str();
    return e.view.code;
}

void clear_error() noexcept {
    auto &e = last_error();
    e.message.clear();
    e.view = hsdk_error{HSDK_OK, ""};
}

CancelToken token_of(const hsdk_cancel *c) { return c ? c->token : CancelToken{}; }

}  // namespace hypersdk::capi

using namespace hypersdk;

extern "C" {

HSDK_API const char *hsdk_version(void) {
    static const std::string v(hypersdk::version());
    return v.c_str();
}

HSDK_API int hsdk_version_number(void) { return HSDK_VERSION_NUMBER; }

HSDK_API const char *hsdk_status_name(hsdk_status status) {
    if (status > 0 || status < -static_cast<int>(Errc::no_memory)) return "unknown";
    return errc_name(static_cast<Errc>(-status)).data();  // names are string literals, NUL-terminated
}

HSDK_API const hsdk_error *hsdk_last_error(void) { return &capi::last_error().view; }

HSDK_API void hsdk_clear_error(void) { capi::clear_error(); }

HSDK_API hsdk_status hsdk_set_log_sink(hsdk_log_fn fn, int min_level, void *user_data) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(min_level >= HSDK_LOG_TRACE && min_level <= HSDK_LOG_OFF);
        if (fn == nullptr) {
            set_log_sink({});
            return HSDK_OK;
        }
        set_log_sink(
            [fn, user_data](LogLevel level, std::string_view message) {
                const std::string text(message);  // NUL-terminate for C
                fn(static_cast<hsdk_log_level>(level), text.c_str(), user_data);
            },
            static_cast<LogLevel>(min_level));
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_cancel_new(hsdk_cancel **out) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out != nullptr);
        *out = new hsdk_cancel{};
        return HSDK_OK;
    });
}

HSDK_API void hsdk_cancel_request(hsdk_cancel *token) {
    if (token) token->token.cancel();
}

HSDK_API int hsdk_cancel_requested(const hsdk_cancel *token) { return token && token->token.is_cancelled() ? 1 : 0; }

HSDK_API void hsdk_cancel_free(hsdk_cancel *token) { delete token; }

HSDK_API hsdk_status hsdk_sha256_file(char *out_hex, size_t out_hex_size, const char *path, hsdk_cancel *cancel) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_hex != nullptr);
        HSDK_CHECK_ARG(out_hex_size >= 65);
        HSDK_CHECK_ARG(path != nullptr);
        auto r = capi::run_typed("file.sha256", {{"path", path}}, cancel, nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        const std::string hex = r.value().at("sha256");
        if (hex.size() != 64) return capi::set_error(Errc::internal, "file.sha256 returned a malformed digest");
        std::memcpy(out_hex, hex.data(), 64);
        out_hex[64] = '\0';
        return HSDK_OK;
    });
}

}  // extern "C"
