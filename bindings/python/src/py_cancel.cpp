// hypersdk.CancelToken over hsdk_cancel.
#include "py_common.hpp"

namespace hypersdk_python {
namespace {

class CancelToken {
public:
    CancelToken() { check(hsdk_cancel_new(&handle_)); }
    ~CancelToken() { hsdk_cancel_free(handle_); }
    CancelToken(const CancelToken &) = delete;
    CancelToken &operator=(const CancelToken &) = delete;
    void cancel() { hsdk_cancel_request(handle_); }
    bool cancelled() const { return hsdk_cancel_requested(handle_) != 0; }
    hsdk_cancel *handle() const { return handle_; }

private:
    hsdk_cancel *handle_ = nullptr;
};

}  // namespace

hsdk_cancel *cancel_handle(const py::object &token) {
    if (token.is_none()) return nullptr;
    return token.cast<CancelToken &>().handle();
}

void register_cancel(py::module_ &m) {
    py::class_<CancelToken>(m, "CancelToken", "A cancellation token; cancel() from any thread stops the operations holding it.")
        .def(py::init<>())
        .def("cancel", &CancelToken::cancel)
        .def_property_readonly("cancelled", &CancelToken::cancelled);
}

}  // namespace hypersdk_python
