// Reading arguments of the native functions. lib/ validates what users pass; these checks keep a
// direct caller of the internal module from crashing the process with a wrong type.
#pragma once

#include "errors.hpp"

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace hsdk_node {

inline std::string string_value(Napi::Env env, const Napi::Value &v, const char *what) {
    if (!v.IsString()) throw_invalid_argument(env, std::string(what) + " must be a string");
    std::string s = v.As<Napi::String>().Utf8Value();
    // A C string ends at the first NUL: a path with one inside would silently name another file.
    if (s.find('\0') != std::string::npos) throw_invalid_argument(env, std::string(what) + " must not contain NUL characters");
    return s;
}

// undefined or null -> nothing; otherwise a string.
inline std::optional<std::string> optional_string(Napi::Env env, const Napi::Value &v, const char *what) {
    if (v.IsUndefined() || v.IsNull()) return std::nullopt;
    return string_value(env, v, what);
}

inline std::optional<std::string> optional_string(Napi::Env env, const Napi::Object &o, const char *key) {
    return optional_string(env, o.Get(key), key);
}

inline bool bool_value(const Napi::Object &o, const char *key, bool fallback) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined() || v.IsNull()) return fallback;
    return v.ToBoolean().Value();
}

// A non-negative integer given as a Number (exact below 2^53) or a BigInt.
inline std::uint64_t u64_value(Napi::Env env, const Napi::Value &v, const char *what) {
    if (v.IsBigInt()) {
        bool lossless = false;
        const std::uint64_t n = v.As<Napi::BigInt>().Uint64Value(&lossless);
        if (!lossless) throw_invalid_argument(env, std::string(what) + " must be an integer between 0 and 2^64-1");
        return n;
    }
    if (!v.IsNumber()) throw_invalid_argument(env, std::string(what) + " must be a number or a bigint");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
        throw_invalid_argument(env, std::string(what) + " must be a non-negative safe integer");
    return static_cast<std::uint64_t>(d);
}

// JavaScript numbers are exact to 2^53 (8 PiB), beyond any virtual disk the formats allow.
inline Napi::Value u64_number(Napi::Env env, std::uint64_t n) { return Napi::Number::New(env, static_cast<double>(n)); }

// Takes ownership of a string the library allocated (NULL reads as empty) and frees it.
inline std::string take_string(char *s) {
    std::string out = s != nullptr ? s : "";
    hsdk_string_free(s);
    return out;
}

// Points a C string field at an optional std::string (NULL when absent).
inline const char *c_str_or_null(const std::optional<std::string> &s) { return s ? s->c_str() : nullptr; }

}  // namespace hsdk_node
