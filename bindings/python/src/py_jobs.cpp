// Operations and jobs for Python over hsdk_run_json / hsdk_job_*: progress, log and finished
// callbacks cross from library threads into Python with the GIL taken; every wait releases it.
// A progress callback that raises cancels the job, and what it raised is raised to the caller.
#include "py_common.hpp"

#include <pybind11/stl.h>

#include <memory>
#include <optional>

namespace hypersdk_python {
namespace {

// What the C callbacks reach through user_data. Touched only with the GIL held.
struct Bridge {
    py::object progress = py::none();  // progress(dict) -> true to cancel
    py::object log = py::none();       // log(level, message)
    py::object finished = py::none();  // finished()
    std::optional<py::error_already_set> raised;
};

const char *level_name(int level) {
    static const char *names[] = {"trace", "debug", "info", "warning", "error", "off"};
    return level >= 0 && level <= 5 ? names[level] : "info";
}

py::dict progress_dict(const hsdk_progress &p) {
    py::dict d;
    d["phase"] = p.phase ? p.phase : "";
    d["bytes_done"] = p.bytes_done;
    d["bytes_total"] = p.bytes_total;
    d["rate_bytes_per_sec"] = p.rate_bytes_per_sec;
    d["eta_seconds"] = p.eta_seconds;
    d["items_done"] = p.items_done;
    d["items_total"] = p.items_total;
    d["item_index"] = p.item_index;
    d["current_item"] = p.current_item ? p.current_item : "";
    d["item_bytes_done"] = p.item_bytes_done;
    d["item_bytes_total"] = p.item_bytes_total;
    d["finished"] = p.finished != 0;
    d["job_id"] = p.job_id ? p.job_id : "";
    return d;
}

int on_progress(const hsdk_progress *p, void *ud) {
    if (shutting_down.load()) return 1;
    py::gil_scoped_acquire gil;
    auto *b = static_cast<Bridge *>(ud);
    if (b->raised) return 1;
    try {
        py::object r = b->progress(progress_dict(*p));
        return (!r.is_none() && r.cast<bool>()) ? 1 : 0;
    } catch (py::error_already_set &e) {
        b->raised = std::move(e);
        return 1;
    }
}

void on_log(hsdk_log_level level, const char *, const char *message, void *ud) {
    if (shutting_down.load()) return;
    py::gil_scoped_acquire gil;
    try {
        static_cast<Bridge *>(ud)->log(level_name(level), message);
    } catch (py::error_already_set &) {
        // A failing log handler must not break the job that logged.
    }
}

void on_finished(int, const char *, void *ud) {
    if (shutting_down.load()) return;
    py::gil_scoped_acquire gil;
    try {
        static_cast<Bridge *>(ud)->finished();
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("hypersdk job finished callback");
    }
}

hsdk_job_callbacks callbacks(Bridge &b, const py::object &cancel, int log_level) {
    hsdk_job_callbacks cb = HSDK_JOB_CALLBACKS_INIT;
    if (!b.progress.is_none()) cb.progress = on_progress;
    if (!b.log.is_none()) {
        cb.log = on_log;
        cb.log_level = log_level;
    }
    if (!b.finished.is_none()) cb.finished = on_finished;
    cb.cancel = cancel_handle(cancel);
    cb.user_data = &b;
    return cb;
}

int level_from(const std::string &level) {
    static const std::pair<const char *, int> levels[] = {{"trace", HSDK_LOG_TRACE}, {"debug", HSDK_LOG_DEBUG}, {"info", HSDK_LOG_INFO},
                                                          {"warning", HSDK_LOG_WARN}, {"error", HSDK_LOG_ERROR}};
    for (auto &[n, l] : levels)
        if (level == n) return l;
    throw py::value_error("level must be trace, debug, info, warning or error");
}

// A job handle. Freed (cancelled and waited for if still running) when the object goes away.
class Job {
public:
    Job(const std::string &operation, const std::string &request, py::object progress, py::object log, py::object finished,
        py::object cancel, const std::string &log_level)
        : bridge_(std::make_unique<Bridge>()) {
        bridge_->progress = std::move(progress);
        bridge_->log = std::move(log);
        bridge_->finished = std::move(finished);
        const hsdk_job_callbacks cb = callbacks(*bridge_, cancel, level_from(log_level));
        hsdk_status s;
        {
            py::gil_scoped_release nogil;
            s = hsdk_job_start(&job_, operation.c_str(), request.c_str(), &cb);
        }
        check(s);
    }
    ~Job() {
        {
            py::gil_scoped_release nogil;
            hsdk_job_free(job_);  // no callback runs after this
        }
        bridge_.reset();
    }
    Job(const Job &) = delete;
    Job &operator=(const Job &) = delete;

    std::string id() const { return hsdk_job_id(job_); }
    int state() const { return hsdk_job_state(job_); }

    bool wait(std::optional<double> timeout) {
        const int64_t ms = timeout ? static_cast<int64_t>(*timeout * 1000.0) : -1;
        hsdk_status s;
        {
            py::gil_scoped_release nogil;
            s = hsdk_job_wait(job_, ms);
        }
        if (s == HSDK_E_TIMEOUT) return false;
        check(s);
        return true;
    }

    void cancel() {
        py::gil_scoped_release nogil;
        hsdk_job_cancel(job_);
    }

    // The result JSON; raises the job's error, or what a progress callback raised.
    std::string result() {
        if (bridge_->raised && hsdk_job_state(job_) > HSDK_JOB_RUNNING) {
            py::error_already_set e = *bridge_->raised;
            throw e;
        }
        char *out = nullptr;
        check(hsdk_job_result_json(&out, job_));
        return take(out);
    }

    std::string info() const {
        char *out = nullptr;
        check(hsdk_job_info_json(&out, job_));
        return take(out);
    }

private:
    std::unique_ptr<Bridge> bridge_;
    hsdk_job *job_ = nullptr;
};

}  // namespace

void register_jobs(py::module_ &m) {
    m.def(
        "_run",
        [](const std::string &operation, const std::string &request, py::object progress, py::object log, py::object cancel,
           const std::string &log_level) {
            Bridge b;
            b.progress = std::move(progress);
            b.log = std::move(log);
            const hsdk_job_callbacks cb = callbacks(b, cancel, level_from(log_level));
            char *out = nullptr;
            hsdk_status s;
            {
                py::gil_scoped_release nogil;
                s = hsdk_run_json(&out, operation.c_str(), request.c_str(), &cb);
            }
            if (b.raised) throw *b.raised;
            check(s);
            return take(out);
        },
        py::arg("operation"), py::arg("request"), py::arg("progress") = py::none(), py::arg("log") = py::none(),
        py::arg("cancel") = py::none(), py::arg("log_level") = "info");

    py::class_<Job>(m, "_Job")
        .def(py::init<const std::string &, const std::string &, py::object, py::object, py::object, py::object, const std::string &>(),
             py::arg("operation"), py::arg("request"), py::arg("progress"), py::arg("log"), py::arg("finished"), py::arg("cancel"),
             py::arg("log_level"))
        .def_property_readonly("id", &Job::id)
        .def_property_readonly("state", &Job::state)
        .def("wait", &Job::wait, py::arg("timeout") = py::none())
        .def("cancel", &Job::cancel)
        .def("result", &Job::result)
        .def("info", &Job::info);

    m.def("_state_name", [](int state) { return std::string(hsdk_job_state_name(state)); });

    // The in-process service (hypervisord's routes without a daemon): HyperSDK() with no URL.
    m.def(
        "_service_request",
        [](const std::string &method, const std::string &target, const py::bytes &body, const py::dict &headers) {
            // The module sees only the C ABI: JSON in and out through Python's json module.
            const py::module_ json = py::module_::import("json");
            py::dict req;
            req["method"] = method;
            req["target"] = target;
            req["body"] = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(PyBytes_AsString(body.ptr()), PyBytes_Size(body.ptr()), "replace"));
            req["headers"] = headers;
            const std::string text = py::str(json.attr("dumps")(req));
            char *out = nullptr;
            hsdk_status status;
            {
                py::gil_scoped_release unlocked;
                status = hsdk_service_request(text.c_str(), &out);
            }
            check(status);
            py::dict resp = json.attr("loads")(take(out));
            const std::string resp_body = py::str(resp["body"]);
            return py::make_tuple(resp["status"], resp["content_type"], py::bytes(resp_body));
        },
        py::arg("method"), py::arg("target"), py::arg("body"), py::arg("headers"));

    m.def("_ops_json", [] {
        char *out = nullptr;
        check(hsdk_ops_json(&out));
        return take(out);
    });

    m.def(
        "_configure_executor",
        [](unsigned max_jobs, unsigned worker_threads, unsigned io_threads) {
            hsdk_executor_options o = HSDK_EXECUTOR_OPTIONS_INIT;
            o.max_jobs = max_jobs;
            o.worker_threads = worker_threads;
            o.io_threads = io_threads;
            check(hsdk_executor_configure(&o));
        },
        py::arg("max_jobs"), py::arg("worker_threads"), py::arg("io_threads"));

    m.def("_executor_stats", [] {
        char *out = nullptr;
        check(hsdk_executor_stats_json(&out));
        return take(out);
    });
}

}  // namespace hypersdk_python
