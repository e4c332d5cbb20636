// Shared pieces of the Python module: turning hypersdk errors into Python exceptions.
#pragma once

#include <hypersdk/error.hpp>

#include <pybind11/pybind11.h>

namespace hypersdk::python {

namespace py = pybind11;

// Raises the Python exception class registered for error.code (a subclass of hypersdk.Error),
// with .code (snake_case name) and .status (the C ABI number) set.
[[noreturn]] void raise(const Error &error);

template <class T>
T unwrap(Result<T> &&r) {
    if (!r) raise(r.error());
    return std::move(r).value();
}
inline void unwrap(Result<void> &&r) {
    if (!r) raise(r.error());
}

void register_errors(py::module_ &m);
void register_images(py::module_ &m);
void register_kvm(py::module_ &m);

}  // namespace hypersdk::python
