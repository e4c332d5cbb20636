// The hypersdk._hypersdk extension module: pybind11 over libhypersdk's C ABI. Blocking calls release
// the GIL; callbacks take it back; errors become hypersdk.Error subclasses with the code kept. The
// Python layer (hypersdk/_api.py) builds every operation's request and reads its result.
#include "py_common.hpp"

#include <memory>

namespace hypersdk_python {
namespace {

// The Python log handler behind the process-wide sink. Leaked on purpose (see raise_status).
py::object &log_handler() {
    static auto *h = new py::object();
    return *h;
}

void log_to_python(hsdk_log_level level, const char *message, void *) {
    if (shutting_down.load()) return;
    static const char *names[] = {"trace", "debug", "info", "warning", "error", "off"};
    py::gil_scoped_acquire gil;
    try {
        if (log_handler()) log_handler()(names[level >= 0 && level <= 5 ? level : 2], message);
    } catch (py::error_already_set &) {
        // A failing log handler must not break the operation that logged.
    }
}

}  // namespace
}  // namespace hypersdk_python

using namespace hypersdk_python;

PYBIND11_MODULE(_hypersdk, m) {
    m.doc() = "libhypersdk's C ABI for Python (use the hypersdk package)";
    m.attr("__version__") = std::string(hsdk_version());
    m.def("version", [] { return std::string(hsdk_version()); });
    register_errors(m);
    register_cancel(m);
    register_images(m);
    register_jobs(m);
    m.def(
        "_set_log_sink",
        [](py::object handler, int level) {
            if (handler.is_none()) {
                check(hsdk_set_log_sink(nullptr, HSDK_LOG_OFF, nullptr));
                log_handler() = py::object();
                return;
            }
            log_handler() = handler;
            check(hsdk_set_log_sink(log_to_python, level, nullptr));
        },
        py::arg("handler"), py::arg("level"));
    // At exit: no library thread may call into Python any more, and the handler must be gone first.
    py::module_::import("atexit").attr("register")(py::cpp_function([] {
        shutting_down.store(true);
        hsdk_set_log_sink(nullptr, HSDK_LOG_OFF, nullptr);
    }));
}
