// The hypersdk._hypersdk extension module: pybind11 over the C++ API. Blocking calls release the
// GIL; callbacks take it back; errors become hypersdk.Error subclasses with the code kept.
#include "py_common.hpp"

#include <hypersdk/log.hpp>
#include <hypersdk/version.hpp>

PYBIND11_MODULE(_hypersdk, m) {
    m.doc() = "libhypersdk: VM export, changed-block backup and virtual disk conversion";
    m.attr("__version__") = std::string(hypersdk::version());
    m.def("version", [] { return std::string(hypersdk::version()); });
    hypersdk::python::register_errors(m);
    hypersdk::python::register_images(m);
    hypersdk::python::register_kvm(m);
    // A Python log handler must be gone before the interpreter is.
    pybind11::module_::import("atexit").attr("register")(pybind11::cpp_function([] { hypersdk::set_log_sink({}); }));
}
