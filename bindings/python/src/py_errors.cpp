// hypersdk.Error and one subclass per error code, created in Python so they are ordinary classes.
#include "py_common.hpp"

#include <map>

namespace hypersdk::python {
namespace {

// Leaked on purpose: Python objects must not be released after the interpreter has finalised.
py::object &base_error() {
    static auto *e = new py::object();
    return *e;
}

std::map<int, py::object> &by_code() {
    static auto *m = new std::map<int, py::object>();
    return *m;
}

std::string class_name(Errc code) {
    std::string n;
    bool upper = true;
    for (char c : errc_name(code)) {
        if (c == '_') {
            upper = true;
            continue;
        }
        n.push_back(upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c);
        upper = false;
    }
    if (n.size() < 5 || n.compare(n.size() - 5, 5, "Error") != 0) n += "Error";
    return n;
}

}  // namespace

void raise(const Error &error) {
    py::gil_scoped_acquire gil;
    const int code = static_cast<int>(error.code);
    py::object cls = by_code().count(code) ? by_code()[code] : base_error();
    py::object exc = cls(error.message);
    exc.attr("code") = std::string(errc_name(error.code));
    exc.attr("status") = -code;
    PyErr_SetObject(cls.ptr(), exc.ptr());
    throw py::error_already_set();
}

void register_errors(py::module_ &m) {
    py::object builtins = py::module_::import("builtins");
    py::object exception = builtins.attr("Exception");
    py::object type = builtins.attr("type");
    py::dict ns;
    ns["__doc__"] = "Base of every hypersdk error; .code is the error's name, .status the C ABI status.";
    ns["__module__"] = "hypersdk";
    ns["code"] = "internal";
    ns["status"] = -16;
    base_error() = type("Error", py::make_tuple(exception), ns);
    m.attr("Error") = base_error();
    for (int i = 1; i <= static_cast<int>(Errc::no_memory); ++i) {
        const auto code = static_cast<Errc>(i);
        py::dict cns;
        cns["__module__"] = "hypersdk";
        cns["__doc__"] = std::string("hypersdk error '") + std::string(errc_name(code)) + "'.";
        py::tuple bases = py::make_tuple(base_error());
        // Let Python code catch the natural built-in too.
        if (code == Errc::not_found) bases = py::make_tuple(base_error(), builtins.attr("FileNotFoundError"));
        if (code == Errc::permission_denied) bases = py::make_tuple(base_error(), builtins.attr("PermissionError"));
        if (code == Errc::timeout) bases = py::make_tuple(base_error(), builtins.attr("TimeoutError"));
        if (code == Errc::invalid_argument) bases = py::make_tuple(base_error(), builtins.attr("ValueError"));
        py::object cls = type(class_name(code), bases, cns);
        by_code()[i] = cls;
        m.attr(class_name(code).c_str()) = cls;
    }
}

}  // namespace hypersdk::python
