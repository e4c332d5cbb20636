// The exception firewall between C callers and the C++ core, and what every C ABI file shares.
#pragma once

#include <hypersdk.h>
#include <hypersdk/cancel.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/job.hpp>

#include <nlohmann/json.hpp>

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

// A struct of ours beyond this size is not a struct of ours.
inline constexpr std::size_t max_struct_size = 4096;

Result<void> check_struct_tail(const void *in, std::size_t caller_size, std::size_t our_size, const char *name);

// Reads a caller's versioned struct. An older (smaller) one keeps `defaults` (the header's _INIT
// values) for the fields it lacks; a newer (larger) one is accepted only when every byte beyond
// ours is zero - fields we do not know about must not be silently dropped. NULL gives the defaults.
template <class T>
Result<T> read_struct(const T *in, T defaults, const char *name) {
    if (in == nullptr) return defaults;
    HSDK_TRYV(check_struct_tail(in, in->struct_size, sizeof(T), name));
    std::memcpy(&defaults, in, std::min(in->struct_size, sizeof defaults));
    defaults.struct_size = sizeof(T);
    return defaults;
}

// Format options from "key=value,..." text as qemu-img -o takes it (none for NULL).
inline Result<FormatOptions> format_options_from(const char *text) {
    if (text == nullptr) return FormatOptions{};
    return parse_format_options(text);
}

inline hsdk_status to_status(Errc code) noexcept { return -static_cast<int>(code); }

// A malloc'ed copy for char **out (freed with hsdk_string_free).
char *copy_out(const std::string &s);
// JSON text for the caller; invalid UTF-8 (a path's bytes) is replaced rather than thrown about.
std::string dump(const nlohmann::json &j);
inline std::string str(const char *s) { return s ? std::string(s) : std::string(); }

// The one progress event, as C sees it; strings point into `p` and `current_item`.
hsdk_progress to_c(const ProgressInfo &p);

// Runs an operation for a typed wrapper: the caller's token and progress callback, the result or
// the job's error. Progress arrives as hsdk_progress (to_c).
Result<nlohmann::json> run_typed(const char *operation, const nlohmann::json &request, const hsdk_cancel *cancel,
                                 hsdk_progress_fn progress, void *progress_user_data);

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

// Reads a versioned struct into `var` or returns its error status.
#define HSDK_READ_STRUCT(var, type, in, init)                                                             \
    type var = init;                                                                                      \
    do {                                                                                                  \
        auto hsdk_read_result = ::hypersdk::capi::read_struct<type>((in), init, #type);                   \
        if (!hsdk_read_result) return ::hypersdk::capi::set_error(hsdk_read_result.error());              \
        var = hsdk_read_result.value();                                                                   \
    } while (0)

}  // namespace hypersdk::capi
