// hypersdk.Error and one subclass per status, created in Python so they are ordinary classes.
#include "py_common.hpp"

#include <map>

namespace hypersdk_python {
namespace {

// Leaked on purpose: Python objects must not be released after the interpreter has finalised.
py::object &base_error() {
    static auto *e = new py::object();
    return *e;
}

std::map<int, py::object> &by_status() {
    static auto *m = new std::map<int, py::object>();
    return *m;
}

std::string class_name(const std::string &status_name) {
    std::string n;
    bool upper = true;
    for (char c : status_name) {
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

std::atomic<bool> shutting_down{false};

void raise_status(hsdk_status status) {
    const hsdk_error *e = hsdk_last_error();
    const std::string message = (e && e->code == status && e->message) ? e->message : hsdk_status_name(status);
    py::gil_scoped_acquire gil;
    py::object cls = by_status().count(status) ? by_status()[status] : base_error();
    py::object exc = cls(message);
    exc.attr("code") = std::string(hsdk_status_name(status));
    exc.attr("status") = status;
    PyErr_SetObject(cls.ptr(), exc.ptr());
    throw py::error_already_set();
}

std::string take(char *text) {
    std::string s = text ? text : "";
    hsdk_string_free(text);
    return s;
}

void register_errors(py::module_ &m) {
    py::object builtins = py::module_::import("builtins");
    py::object type = builtins.attr("type");
    py::dict ns;
    ns["__doc__"] = "Base of every hypersdk error; .code is the error's name, .status the C ABI status.";
    ns["__module__"] = "hypersdk";
    ns["code"] = "internal";
    ns["status"] = HSDK_E_INTERNAL;
    base_error() = type("Error", py::make_tuple(builtins.attr("Exception")), ns);
    m.attr("Error") = base_error();
    for (int status = -1; std::string(hsdk_status_name(status)) != "unknown"; --status) {
        const std::string name = hsdk_status_name(status);
        py::dict cns;
        cns["__module__"] = "hypersdk";
        cns["__doc__"] = "hypersdk error '" + name + "'.";
        py::tuple bases = py::make_tuple(base_error());
        // Let Python code catch the natural built-in too.
        if (status == HSDK_E_NOT_FOUND) bases = py::make_tuple(base_error(), builtins.attr("FileNotFoundError"));
        if (status == HSDK_E_PERMISSION_DENIED) bases = py::make_tuple(base_error(), builtins.attr("PermissionError"));
        if (status == HSDK_E_TIMEOUT) bases = py::make_tuple(base_error(), builtins.attr("TimeoutError"));
        if (status == HSDK_E_INVALID_ARGUMENT) bases = py::make_tuple(base_error(), builtins.attr("ValueError"));
        py::object cls = type(class_name(name), bases, cns);
        by_status()[status] = cls;
        m.attr(class_name(name).c_str()) = cls;
    }
}

}  // namespace hypersdk_python
