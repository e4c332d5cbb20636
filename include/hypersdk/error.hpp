// Errors are values: every fallible call returns hypersdk::Result<T>.
#pragma once

#include <boost/outcome/basic_result.hpp>
#include <boost/outcome/policy/base.hpp>
#include <boost/outcome/success_failure.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace hypersdk {

// Pinned forever: the C ABI returns -(value). A retired code keeps its number.
enum class Errc : int {
    ok = 0,
    invalid_argument = 1,
    not_found = 2,
    unsupported = 3,
    corrupt_image = 4,
    io_error = 5,
    no_space = 6,
    network_error = 7,
    tls_error = 8,
    auth_failed = 9,
    permission_denied = 10,
    timeout = 11,
    cancelled = 12,
    checksum_mismatch = 13,
    remote_error = 14,
    conflict = 15,
    internal = 16,
    no_memory = 17,
};

// Stable snake_case name of a code ("corrupt_image"); "unknown" for values outside the enum.
std::string_view errc_name(Errc code) noexcept;

struct Error {
    Errc code = Errc::internal;
    std::string message;  // complete human text, e.g. "corrupt image: L1 table beyond end of file (offset 0x30000)"

    // Returns a copy whose message reads "<context>: <message>".
    [[nodiscard]] Error with_context(std::string_view context) const;
};

// Thrown only by Result<T>::value() on a failed result, inside C++ code. Never crosses the C ABI.
class Exception : public std::runtime_error {
public:
    explicit Exception(Error error) : std::runtime_error(error.message), error_(std::move(error)) {}
    [[nodiscard]] const Error &error() const noexcept { return error_; }

private:
    Error error_;
};

namespace outcome = BOOST_OUTCOME_V2_NAMESPACE;

// value() on a failure throws hypersdk::Exception; error() on a success is a logic error.
struct ThrowErrorPolicy : outcome::policy::base {
    template <class Impl>
    static constexpr void wide_value_check(Impl &&self) {
        if (!base::_has_value(std::forward<Impl>(self))) throw Exception(base::_error(std::forward<Impl>(self)));
    }
    template <class Impl>
    static constexpr void wide_error_check(Impl &&self) {
        if (!base::_has_error(std::forward<Impl>(self))) throw std::logic_error("hypersdk::Result has no error");
    }
    template <class Impl>
    static constexpr void wide_exception_check(Impl &&self) {
        if (!base::_has_exception(std::forward<Impl>(self))) throw std::logic_error("hypersdk::Result has no exception");
    }
};

template <class T>
using Result = outcome::basic_result<T, Error, ThrowErrorPolicy>;

inline auto success() { return outcome::success(); }
template <class T>
auto success(T &&value) {
    return outcome::success(std::forward<T>(value));
}

// Builds a failure; callers write `return fail(Errc::not_found, "no such VM: " + path);`.
inline auto fail(Errc code, std::string message) { return outcome::failure(Error{code, std::move(message)}); }
inline auto fail(Error error) { return outcome::failure(std::move(error)); }

// "corrupt image: <what>" - the wording every format driver uses.
inline auto fail_corrupt(std::string what) { return fail(Errc::corrupt_image, "corrupt image: " + std::move(what)); }
inline auto fail_unsupported(std::string what) { return fail(Errc::unsupported, "unsupported: " + std::move(what)); }

}  // namespace hypersdk

// Propagate a failure to the caller: `HSDK_TRY(auto x, f());` declares x from f()'s value,
// `HSDK_TRYV(g());` just checks. (Our own macros: Boost's TRY changed meaning between releases.)
#define HSDK_CONCAT_INNER(a, b) a##b
#define HSDK_CONCAT(a, b) HSDK_CONCAT_INNER(a, b)
#define HSDK_TRY(var, ...)                                                                          \
    auto HSDK_CONCAT(hsdk_try_result_, __LINE__) = (__VA_ARGS__);                                   \
    if (!HSDK_CONCAT(hsdk_try_result_, __LINE__))                                                   \
        return ::hypersdk::fail(std::move(HSDK_CONCAT(hsdk_try_result_, __LINE__)).error());        \
    var = std::move(HSDK_CONCAT(hsdk_try_result_, __LINE__)).value()
#define HSDK_TRYV(...)                                                                              \
    do {                                                                                            \
        if (auto hsdk_tryv_result = (__VA_ARGS__); !hsdk_tryv_result)                               \
            return ::hypersdk::fail(std::move(hsdk_tryv_result).error());                           \
    } while (0)
