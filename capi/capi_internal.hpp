// The exception firewall between C callers and the C++ core.
#pragma once

#include <hypersdk.h>
#include <hypersdk/cancel.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/error.hpp>

#include <algorithm>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <type_traits>

namespace hypersdk::capi {

// Records the thread's last error and returns its status.
hsdk_status set_error(const Error &error) noexcept;
hsdk_status set_error(Errc code, const char *message) noexcept;
void clear_error() noexcept;

// The token behind a C handle (a fresh, never-cancelled token for NULL).
CancelToken token_of(const hsdk_cancel *cancel);

// Reads a caller's struct, tolerating older (smaller) versions of it: fields it lacks keep
// `defaults` (the header's _INIT values). NULL gives the defaults.
template <class T>
T read_struct(const T *in, T defaults) {
    if (in != nullptr) std::memcpy(&defaults, in, std::min(in->struct_size, sizeof defaults));
    return defaults;
}

// Format options from "key=value,..." text as qemu-img -o takes it (none for NULL).
inline Result<FormatOptions> format_options_from(const char *text) {
    if (text == nullptr) return FormatOptions{};
    return parse_format_options(text);
}

inline hsdk_status to_status(Errc code) noexcept { return -static_cast<int>(code); }

// Runs body (which returns Result<void> or hsdk_status) and turns anything thrown into a status.
template <class F>
hsdk_status guard(F &&body) noexcept {
    try {
        if constexpr (std::is_same_v<std::invoke_result_t<F>, hsdk_status>) {
            return body();
        } else {
            auto r = body();
            if (r) return HSDK_OK;
            return set_error(r.error());
        }
    } catch (const std::bad_alloc &) {
        return set_error(Errc::no_memory, "out of memory");
    } catch (const Exception &e) {
        return set_error(e.error());
    } catch (const std::exception &e) {
        return set_error(Errc::internal, e.what());
    } catch (...) {
        return set_error(Errc::internal, "unknown internal error");
    }
}

#define HSDK_CHECK_ARG(cond)                                                                              \
    do {                                                                                                  \
        if (!(cond)) return ::hypersdk::capi::set_error(::hypersdk::Errc::invalid_argument,               \
                                                        "invalid argument: " #cond " is false");         \
    } while (0)

}  // namespace hypersdk::capi
