// The data plane for Python: images read as block devices (hsdk_image_*) and images written from
// the caller's data (hsdk_writer_*). Blocking calls release the GIL.
#include "py_common.hpp"

#include <pybind11/stl.h>

#include <optional>

namespace hypersdk_python {
namespace {

class Image {
public:
    explicit Image(hsdk_image *image) : image_(image) {}
    ~Image() { hsdk_image_free(image_); }
    Image(const Image &) = delete;
    Image &operator=(const Image &) = delete;

    hsdk_image *get() const {
        if (image_ == nullptr) throw py::value_error("image is closed");
        return image_;
    }
    void close() {
        hsdk_image_free(image_);
        image_ = nullptr;
    }

private:
    hsdk_image *image_;
};

py::object loads(const std::string &text) {
    // Leaked on purpose: a static py::object would be released after the interpreter is gone.
    static auto *fn = new py::object(py::module_::import("json").attr("loads"));
    return (*fn)(text);
}

std::string info_json(const Image &i, int chain) {
    char *out = nullptr;
    check(hsdk_image_info_json(&out, i.get(), chain));
    return take(out);
}

class Writer {
public:
    Writer(hsdk_writer *w, std::uint64_t size) : writer_(w), size(size) {}
    ~Writer() { hsdk_writer_free(writer_); }  // unclosed: the image is removed
    Writer(const Writer &) = delete;
    Writer &operator=(const Writer &) = delete;
    hsdk_writer *get() const {
        if (writer_ == nullptr) throw py::value_error("writer is closed");
        return writer_;
    }
    const std::uint64_t size;
    bool closed = false;

private:
    hsdk_writer *writer_;
};

void close_writer(Writer &w) {
    hsdk_status s;
    {
        py::gil_scoped_release nogil;
        s = hsdk_writer_close(w.get());
    }
    check(s);
    w.closed = true;
}

}  // namespace

void register_images(py::module_ &m) {
    py::class_<Image>(m, "Image", "A disk image opened read-only as a block device (use hypersdk.open_image).")
        .def_property_readonly("virtual_size", [](const Image &i) { return hsdk_image_virtual_size(i.get()); })
        .def_property_readonly("info", [](const Image &i) { return loads(info_json(i, 0)); }, "qemu-img-like description of the image")
        .def("chain_info", [](const Image &i) { return loads(info_json(i, 1)); },
             "The image and its backing files, nested under 'backing-image'")
        .def(
            "read",
            [](const Image &i, std::uint64_t offset, std::size_t length) {
                std::string buf(length, '\0');
                hsdk_image *img = i.get();
                hsdk_status s;
                {
                    py::gil_scoped_release nogil;
                    s = hsdk_image_read(img, offset, buf.data(), buf.size());
                }
                check(s);
                return py::bytes(buf);
            },
            py::arg("offset"), py::arg("length"))
        .def(
            "block_status",
            [](const Image &i, std::uint64_t offset, std::optional<std::uint64_t> length) {
                hsdk_image *img = i.get();
                const std::uint64_t size = hsdk_image_virtual_size(img);
                const std::uint64_t n = length ? *length : size - std::min(offset, size);
                hsdk_extent *ext = nullptr;
                size_t count = 0;
                hsdk_status s;
                {
                    py::gil_scoped_release nogil;
                    s = hsdk_image_block_status(&ext, &count, img, offset, n);
                }
                check(s);
                static const char *kinds[] = {"data", "zero", "hole"};
                py::list out;
                for (size_t k = 0; k < count; ++k) {
                    py::dict d;
                    d["offset"] = ext[k].offset;
                    d["length"] = ext[k].length;
                    d["kind"] = kinds[ext[k].kind >= 0 && ext[k].kind <= 2 ? ext[k].kind : 0];
                    d["depth"] = ext[k].depth;
                    d["host_offset"] = ext[k].host_offset == UINT64_MAX ? py::object(py::none()) : py::object(py::int_(ext[k].host_offset));
                    out.append(d);
                }
                hsdk_extents_free(ext);
                return out;
            },
            py::arg("offset") = 0, py::arg("length") = py::none())
        .def("close", &Image::close)
        .def("__enter__", [](Image &i) -> Image & { return i; }, py::return_value_policy::reference)
        .def("__exit__", [](Image &i, py::args) { i.close(); });

    m.def(
        "_open_image",
        [](const std::string &path, std::optional<std::string> format, bool allow_external_files, bool open_backing) {
            hsdk_open_options o = HSDK_OPEN_OPTIONS_INIT;
            o.format = format ? format->c_str() : nullptr;
            o.allow_external_files = allow_external_files ? 1 : 0;
            o.open_backing = open_backing ? 1 : 0;
            hsdk_image *img = nullptr;
            hsdk_status s;
            {
                py::gil_scoped_release nogil;
                s = hsdk_image_open(&img, path.c_str(), &o);
            }
            check(s);
            return std::make_unique<Image>(img);
        },
        py::arg("path"), py::arg("format"), py::arg("allow_external_files"), py::arg("open_backing"));

    py::class_<Writer>(m, "ImageWriter", "Writes an image from your own data (hypersdk.create_image). Pieces ascend; raw takes any order.")
        .def(
            "write",
            [](const Writer &w, std::uint64_t offset, py::buffer data) {
                py::buffer_info info = data.request();
                const auto n = static_cast<std::size_t>(info.size * info.itemsize);
                hsdk_writer *h = w.get();
                hsdk_status s;
                {
                    py::gil_scoped_release nogil;
                    s = hsdk_writer_write(h, offset, info.ptr, n);
                }
                check(s);
            },
            py::arg("offset"), py::arg("data"))
        .def_property_readonly("random_access", [](const Writer &w) { return hsdk_writer_random_access(w.get()) != 0; })
        .def_property_readonly("virtual_size", [](const Writer &w) { return w.size; })
        .def("close", &close_writer)
        .def("__enter__", [](Writer &w) -> Writer & { return w; }, py::return_value_policy::reference)
        .def("__exit__", [](Writer &w, py::object exc_type, py::object, py::object) {
            // Leaving the block normally publishes the image; an exception leaves nothing behind.
            if (exc_type.is_none() && !w.closed) close_writer(w);
        });

    m.def(
        "_create_image",
        [](const std::string &path, std::uint64_t virtual_size, const std::string &format, std::optional<std::string> options,
           bool compress, unsigned threads, bool overwrite) {
            hsdk_writer_options o = HSDK_WRITER_OPTIONS_INIT;
            o.format = format.c_str();
            o.options = options ? options->c_str() : nullptr;
            o.compress = compress ? 1 : 0;
            o.threads = threads;
            o.overwrite = overwrite ? 1 : 0;
            hsdk_writer *w = nullptr;
            hsdk_status s;
            {
                py::gil_scoped_release nogil;
                s = hsdk_writer_create(&w, path.c_str(), virtual_size, &o);
            }
            check(s);
            return std::make_unique<Writer>(w, virtual_size);
        },
        py::arg("path"), py::arg("virtual_size"), py::arg("format"), py::arg("options"), py::arg("compress"), py::arg("threads"),
        py::arg("overwrite"));
}

}  // namespace hypersdk_python
