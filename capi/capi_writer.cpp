// C ABI: writing an image from the caller's data.
#include "capi_internal.hpp"

#include <hypersdk/writer.hpp>

#include <cstring>

struct hsdk_writer {
    std::unique_ptr<hypersdk::ImageWriter> writer;
};

using namespace hypersdk;

extern "C" {

HSDK_API hsdk_status hsdk_writer_create(hsdk_writer **out, const char *path, uint64_t virtual_size,
                                        const hsdk_writer_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out != nullptr);
        *out = nullptr;
        HSDK_CHECK_ARG(path != nullptr);
        HSDK_CHECK_ARG(options != nullptr);
        HSDK_READ_STRUCT(o, hsdk_writer_options, options, HSDK_WRITER_OPTIONS_INIT);
        HSDK_CHECK_ARG(o.format != nullptr);
        ImageWriterOptions wo;
        wo.format = o.format;
        auto parsed = capi::format_options_from(o.options);
        if (!parsed) return capi::set_error(parsed.error());
        wo.format_options = std::move(parsed).value();
        wo.compress = o.compress != 0;
        wo.threads = o.threads;
        wo.overwrite = o.overwrite != 0;
        auto w = ImageWriter::create(path, virtual_size, wo);
        if (!w) return capi::set_error(w.error());
        *out = new hsdk_writer{std::move(w).value()};
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_writer_write(hsdk_writer *writer, uint64_t offset, const void *data, size_t length) {
    return capi::guard([&]() -> Result<void> {
        if (writer == nullptr || (data == nullptr && length != 0))
            return fail(Errc::invalid_argument, "invalid argument: writer and data must not be NULL");
        return writer->writer->write(offset, std::span<const std::byte>(static_cast<const std::byte *>(data), length));
    });
}

HSDK_API int hsdk_writer_random_access(const hsdk_writer *writer) { return writer && writer->writer->random_access() ? 1 : 0; }

HSDK_API hsdk_status hsdk_writer_close(hsdk_writer *writer) {
    return capi::guard([&]() -> Result<void> {
        if (writer == nullptr) return fail(Errc::invalid_argument, "invalid argument: writer is NULL");
        return writer->writer->close();
    });
}

HSDK_API void hsdk_writer_free(hsdk_writer *writer) { delete writer; }

}  // extern "C"
