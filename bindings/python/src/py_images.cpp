// Images, conversion, comparison, checks, cancellation and logging for Python.
#include "py_common.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/writer.hpp>

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <optional>

namespace hypersdk::python {
namespace {

py::object json_to_py(const nlohmann::json &j) {
    // Leaked on purpose: a static py::object would be released after the interpreter is gone.
    static auto *loads = new py::object(py::module_::import("json").attr("loads"));
    return (*loads)(j.dump());
}

OpenOptions open_options(const std::optional<std::string> &format, bool allow_external_files, bool open_backing) {
    OpenOptions o;
    if (format) o.format = *format;
    o.allow_external_files = allow_external_files;
    o.open_backing = open_backing;
    return o;
}

// -o options from a dict {"cluster_size": 65536} or a "k=v,k=v" string.
FormatOptions format_options(const py::object &options) {
    FormatOptions out;
    if (options.is_none()) return out;
    if (py::isinstance<py::str>(options)) return unwrap(parse_format_options(options.cast<std::string>()));
    for (auto item : options.cast<py::dict>()) {
        py::object v = py::reinterpret_borrow<py::object>(item.second);
        std::string value;
        if (py::isinstance<py::bool_>(v)) value = v.cast<bool>() ? "on" : "off";
        else value = py::str(v).cast<std::string>();
        out.emplace_back(py::str(item.first).cast<std::string>(), value);
    }
    return out;
}

// Wraps a Python progress callable: it receives a dict and may return True to cancel. An exception
// it raises cancels the operation and is re-raised afterwards.
struct ProgressBridge {
    py::object fn;
    std::optional<py::error_already_set> raised;

    ProgressCallback make() {
        if (fn.is_none()) return {};
        return [this](const ProgressInfo &p) {
            py::gil_scoped_acquire gil;
            if (raised) return ProgressAction::cancel;
            try {
                py::dict d;
                d["phase"] = p.phase;
                d["bytes_done"] = p.bytes_done;
                d["bytes_total"] = p.bytes_total;
                d["rate_bytes_per_sec"] = p.rate_bytes_per_sec;
                d["eta_seconds"] = p.eta_seconds;
                d["finished"] = p.finished;
                py::object r = fn(d);
                return (!r.is_none() && r.cast<bool>()) ? ProgressAction::cancel : ProgressAction::proceed;
            } catch (py::error_already_set &e) {
                raised = std::move(e);
                return ProgressAction::cancel;
            }
        };
    }
};

class PyImage {
public:
    explicit PyImage(std::unique_ptr<Image> image) : image_(std::move(image)) {}
    Image &get() {
        if (!image_) throw py::value_error("image is closed");
        return *image_;
    }
    void close() { image_.reset(); }

private:
    std::unique_ptr<Image> image_;
};

}  // namespace

void register_images(py::module_ &m) {
    py::class_<CancelToken>(m, "CancelToken", "A cancellation token; cancel() from any thread stops the operations holding it.")
        .def(py::init<>())
        .def("cancel", &CancelToken::cancel)
        .def_property_readonly("cancelled", &CancelToken::is_cancelled);

    py::class_<PyImage>(m, "Image", "A disk image opened read-only as a block device (use hypersdk.open_image).")
        .def_property_readonly("virtual_size", [](PyImage &i) { return i.get().virtual_size(); })
        .def_property_readonly("info", [](PyImage &i) { return json_to_py(to_json(i.get().info())); },
                               "qemu-img-like description of the image")
        .def("chain_info", [](PyImage &i) { return json_to_py(chain_to_json(i.get().chain_info())); },
             "The image and its backing files, nested under 'backing-image'")
        .def(
            "read",
            [](PyImage &i, std::uint64_t offset, std::size_t length) {
                std::string buf(length, '\0');
                Result<void> r = success();
                {
                    py::gil_scoped_release nogil;
                    r = i.get().read(offset, std::as_writable_bytes(std::span(buf.data(), buf.size())));
                }
                unwrap(std::move(r));
                return py::bytes(buf);
            },
            py::arg("offset"), py::arg("length"))
        .def(
            "block_status",
            [](PyImage &i, std::uint64_t offset, std::optional<std::uint64_t> length) {
                const std::uint64_t n = length ? *length : i.get().virtual_size() - std::min(offset, i.get().virtual_size());
                Result<std::vector<Extent>> r = std::vector<Extent>{};
                {
                    py::gil_scoped_release nogil;
                    r = i.get().block_status(offset, n);
                }
                py::list out;
                for (const auto &e : unwrap(std::move(r))) {
                    py::dict d;
                    d["offset"] = e.offset;
                    d["length"] = e.length;
                    d["kind"] = std::string(extent_kind_name(e.kind));
                    d["depth"] = e.depth;
                    d["host_offset"] = e.host_offset == no_host_offset ? py::object(py::none()) : py::object(py::int_(e.host_offset));
                    out.append(d);
                }
                return out;
            },
            py::arg("offset") = 0, py::arg("length") = py::none())
        .def("close", &PyImage::close)
        .def("__enter__", [](PyImage &i) -> PyImage & { return i; }, py::return_value_policy::reference)
        .def("__exit__", [](PyImage &i, py::args) { i.close(); });

    m.def(
        "open_image",
        [](const std::string &path, std::optional<std::string> format, bool allow_external_files, bool open_backing) {
            auto o = open_options(format, allow_external_files, open_backing);
            Result<std::unique_ptr<Image>> r = fail(Errc::internal, "not run");
            {
                py::gil_scoped_release nogil;
                r = open_image(path, o);
            }
            return PyImage(unwrap(std::move(r)));
        },
        py::arg("path"), py::arg("format") = py::none(), py::arg("allow_external_files") = false, py::arg("open_backing") = true,
        "Open a disk image (format probed unless given; raw only when named).");

    m.def("probe_format", [](const std::string &path) { return unwrap(probe_format(path)); }, py::arg("path"));

    py::class_<ImageWriter>(m, "ImageWriter",
                            "Writes an image from your own data (hypersdk.create_image). Pieces ascend; raw takes any order.")
        .def(
            "write",
            [](ImageWriter &w, std::uint64_t offset, py::buffer data) {
                py::buffer_info info = data.request();
                const auto *p = static_cast<const std::byte *>(info.ptr);
                const auto n = static_cast<std::size_t>(info.size * info.itemsize);
                Result<void> r = success();
                {
                    py::gil_scoped_release nogil;
                    r = w.write(offset, std::span<const std::byte>(p, n));
                }
                unwrap(std::move(r));
            },
            py::arg("offset"), py::arg("data"))
        .def_property_readonly("random_access", &ImageWriter::random_access)
        .def_property_readonly("virtual_size", &ImageWriter::virtual_size)
        .def("close",
             [](ImageWriter &w) {
                 Result<void> r = success();
                 {
                     py::gil_scoped_release nogil;
                     r = w.close();
                 }
                 unwrap(std::move(r));
             })
        .def("__enter__", [](ImageWriter &w) -> ImageWriter & { return w; }, py::return_value_policy::reference)
        .def("__exit__", [](ImageWriter &w, py::object exc_type, py::object, py::object) {
            // Leaving the block normally publishes the image; an exception leaves nothing behind.
            if (exc_type.is_none()) {
                Result<void> r = success();
                {
                    py::gil_scoped_release nogil;
                    r = w.close();
                }
                if (!r && r.error().message.find("already closed") == std::string::npos) unwrap(std::move(r));
            }
        });

    m.def(
        "create_image",
        [](const std::string &path, std::uint64_t virtual_size, const std::string &format, py::object options, bool compress,
           unsigned threads, bool overwrite) {
            ImageWriterOptions o;
            o.format = format;
            o.format_options = format_options(options);
            o.compress = compress;
            o.threads = threads;
            o.overwrite = overwrite;
            return std::unique_ptr<ImageWriter>(unwrap(ImageWriter::create(path, virtual_size, o)));
        },
        py::arg("path"), py::arg("virtual_size"), py::arg("format"), py::arg("options") = py::none(), py::arg("compress") = false,
        py::arg("threads") = 0, py::arg("overwrite") = true,
        "Create an image to fill with ImageWriter.write(); it appears when closed (or the with-block ends cleanly).");

    m.def(
        "convert",
        [](const std::string &source, const std::string &destination, const std::string &output_format, py::object options,
           bool compress, unsigned threads, std::optional<std::string> source_format, bool allow_external_files,
           py::object progress, std::optional<CancelToken> cancel, bool overwrite, const std::string &cache) {
            ConvertOptions co;
            unwrap(set_cache_mode(co, cache));
            co.output_format = output_format;
            co.format_options = format_options(options);
            co.compress = compress;
            co.threads = threads;
            co.overwrite = overwrite;
            if (cancel) co.cancel = *cancel;
            ProgressBridge bridge{progress, std::nullopt};
            co.progress = bridge.make();
            auto so = open_options(source_format, allow_external_files, true);
            Result<ConvertStats> r = fail(Errc::internal, "not run");
            {
                py::gil_scoped_release nogil;
                r = convert(source, so, destination, co);
            }
            if (bridge.raised) throw std::move(*bridge.raised);
            auto s = unwrap(std::move(r));
            py::dict d;
            d["virtual_size"] = s.virtual_size;
            d["bytes_read"] = s.bytes_read;
            d["bytes_written"] = s.bytes_written;
            d["output_size"] = s.output_size;
            d["seconds"] = s.seconds;
            return d;
        },
        py::arg("source"), py::arg("destination"), py::arg("output_format"), py::arg("options") = py::none(),
        py::arg("compress") = false, py::arg("threads") = 0, py::arg("source_format") = py::none(),
        py::arg("allow_external_files") = false, py::arg("progress") = py::none(), py::arg("cancel") = py::none(),
        py::arg("overwrite") = true, py::arg("cache") = "none",
        "Convert an image. The destination appears only when complete. progress(dict) may return True to cancel.\n"
        "cache: 'none' (O_DIRECT for aligned data, fsync), 'writeback' (page cache, fsync) or 'unsafe' (page cache,\n"
        "no fsync: qemu-img convert's default).");

    m.def(
        "compare",
        [](const std::string &a, const std::string &b, std::optional<std::string> a_format, std::optional<std::string> b_format,
           bool strict) {
            auto ia = unwrap(open_image(a, open_options(a_format, false, true)));
            auto ib = unwrap(open_image(b, open_options(b_format, false, true)));
            CompareOptions co;
            co.strict = strict;
            Result<CompareResult> r = fail(Errc::internal, "not run");
            {
                py::gil_scoped_release nogil;
                r = compare(*ia, *ib, co);
            }
            auto c = unwrap(std::move(r));
            py::dict d;
            d["identical"] = c.identical;
            d["first_difference"] = c.identical ? py::object(py::none()) : py::object(py::int_(c.first_difference));
            d["reason"] = c.reason;
            return d;
        },
        py::arg("a"), py::arg("b"), py::arg("a_format") = py::none(), py::arg("b_format") = py::none(), py::arg("strict") = false);

    m.def(
        "check",
        [](const std::string &path, std::optional<std::string> format) {
            Result<CheckReport> r = fail(Errc::internal, "not run");
            {
                py::gil_scoped_release nogil;
                r = check_image(path, open_options(format, false, true));
            }
            auto c = unwrap(std::move(r));
            py::dict d;
            d["format"] = c.format;
            d["clean"] = c.clean;
            d["errors"] = c.errors;
            d["leaks"] = c.leaks;
            d["messages"] = c.messages;
            return d;
        },
        py::arg("path"), py::arg("format") = py::none());

    m.def("readable_formats", &readable_formats);
    m.def("writable_formats", &writable_formats);

    m.def(
        "set_log_handler",
        [](py::object handler, const std::string &level) {
            static const std::pair<const char *, LogLevel> levels[] = {{"trace", LogLevel::trace}, {"debug", LogLevel::debug},
                                                                       {"info", LogLevel::info},   {"warning", LogLevel::warn},
                                                                       {"error", LogLevel::error}};
            LogLevel min = LogLevel::info;
            bool known = false;
            for (auto &[n, l] : levels)
                if (level == n) min = l, known = true;
            if (!known) throw py::value_error("level must be trace, debug, info, warning or error");
            if (handler.is_none()) {
                set_log_sink({});
                return;
            }
            auto keep = std::make_shared<py::object>(handler);
            set_log_sink(
                [keep](LogLevel l, std::string_view msg) {
                    py::gil_scoped_acquire gil;
                    try {
                        (*keep)(std::string(log_level_name(l)), std::string(msg));
                    } catch (py::error_already_set &) {
                        // A failing log handler must not break the operation that logged.
                    }
                },
                min);
        },
        py::arg("handler"), py::arg("level") = "info", "Route library log lines to handler(level, message); None silences.");
}

}  // namespace hypersdk::python
