// Shared pieces of the _hypersdk extension: it binds libhypersdk's C ABI (<hypersdk.h>) only, as the
// Node addon does, so Python, Node and C reach the same entry points.
#pragma once

#include <hypersdk.h>

#include <pybind11/pybind11.h>

#include <atomic>
#include <string>

namespace hypersdk_python {

namespace py = pybind11;

// Raises the hypersdk.Error subclass of a failed call's status, with the thread's last error
// message, .code (the status name) and .status (the number). Call right after the failing call.
[[noreturn]] void raise_status(hsdk_status status);
// Raises for status unless it is HSDK_OK.
inline void check(hsdk_status status) {
    if (status != HSDK_OK) raise_status(status);
}
// Takes a string the library returned (hsdk_string_free).
std::string take(char *text);

// Set at interpreter exit: callbacks from library threads then answer "cancel" without Python.
extern std::atomic<bool> shutting_down;

void register_errors(py::module_ &m);
void register_cancel(py::module_ &m);
void register_images(py::module_ &m);
void register_jobs(py::module_ &m);

// The C handle behind a hypersdk.CancelToken (None: NULL).
hsdk_cancel *cancel_handle(const py::object &token);

}  // namespace hypersdk_python
