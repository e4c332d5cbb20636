// C ABI: images, conversion, comparison, checking.
#include "capi_internal.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include <cstring>

struct hsdk_image {
    std::unique_ptr<hypersdk::Image> image;
};

namespace hypersdk::capi {
namespace {

// Reads a caller's open options (older, smaller versions of the struct are fine).
Result<OpenOptions> open_options_from(const hsdk_open_options *o) {
    OpenOptions out;
    HSDK_TRY(const hsdk_open_options copy, read_struct<hsdk_open_options>(o, HSDK_OPEN_OPTIONS_INIT, "hsdk_open_options"));
    if (copy.format) out.format = copy.format;
    out.allow_external_files = copy.allow_external_files != 0;
    out.open_backing = copy.open_backing != 0;
    return out;
}

// The same as request fields of an image operation ("format" named `format_key`). An operation
// that reads one layer only (image.check) takes no open_backing.
Result<void> add_open_options(nlohmann::json &request, const hsdk_open_options *o, const char *format_key, bool takes_backing) {
    HSDK_TRY(auto opts, open_options_from(o));
    if (!opts.format.empty()) request[format_key] = opts.format;
    if (opts.allow_external_files) request["allow_external_files"] = true;
    if (takes_backing && !opts.open_backing) request["open_backing"] = false;
    return success();
}

}  // namespace
}  // namespace hypersdk::capi

using namespace hypersdk;

extern "C" {

HSDK_API hsdk_status hsdk_image_open(hsdk_image **out, const char *path, const hsdk_open_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out != nullptr);
        *out = nullptr;
        HSDK_CHECK_ARG(path != nullptr);
        auto o = capi::open_options_from(options);
        if (!o) return capi::set_error(o.error());
        auto image = open_image(path, o.value());
        if (!image) return capi::set_error(image.error());
        *out = new hsdk_image{std::move(image).value()};
        return HSDK_OK;
    });
}

HSDK_API void hsdk_image_free(hsdk_image *image) { delete image; }

HSDK_API uint64_t hsdk_image_virtual_size(const hsdk_image *image) { return image ? image->image->virtual_size() : 0; }

HSDK_API hsdk_status hsdk_image_read(hsdk_image *image, uint64_t offset, void *buffer, size_t length) {
    return capi::guard([&]() -> Result<void> {
        if (image == nullptr || (buffer == nullptr && length != 0))
            return fail(Errc::invalid_argument, "invalid argument: image and buffer must not be NULL");
        return image->image->read(offset, std::span<std::byte>(static_cast<std::byte *>(buffer), length));
    });
}

HSDK_API hsdk_status hsdk_image_block_status(hsdk_extent **out_extents, size_t *out_count, hsdk_image *image,
                                             uint64_t offset, uint64_t length) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_extents != nullptr && out_count != nullptr);
        *out_extents = nullptr;
        *out_count = 0;
        HSDK_CHECK_ARG(image != nullptr);
        auto runs = image->image->block_status(offset, length);
        if (!runs) return capi::set_error(runs.error());
        const auto &v = runs.value();
        auto *arr = static_cast<hsdk_extent *>(std::calloc(v.empty() ? 1 : v.size(), sizeof(hsdk_extent)));
        if (arr == nullptr) throw std::bad_alloc();
        for (std::size_t i = 0; i < v.size(); ++i)
            arr[i] = hsdk_extent{v[i].offset, v[i].length, static_cast<int>(v[i].kind), v[i].depth, v[i].host_offset};
        *out_extents = arr;
        *out_count = v.size();
        return HSDK_OK;
    });
}

HSDK_API void hsdk_extents_free(hsdk_extent *extents) { std::free(extents); }

HSDK_API hsdk_status hsdk_image_info_json(char **out_json, const hsdk_image *image, int with_backing_chain) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        HSDK_CHECK_ARG(image != nullptr);
        const auto chain = image->image->chain_info();
        const auto j = with_backing_chain ? chain_to_json(chain) : to_json(chain.front());
        *out_json = capi::copy_out(capi::dump(j));
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_probe_format(char **out_name, const char *path) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_name != nullptr);
        *out_name = nullptr;
        HSDK_CHECK_ARG(path != nullptr);
        auto r = capi::run_typed("image.probe", {{"path", path}}, nullptr, nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        *out_name = capi::copy_out(r.value().at("format").get<std::string>());
        return HSDK_OK;
    });
}

HSDK_API void hsdk_string_free(char *string) { std::free(string); }

HSDK_API hsdk_status hsdk_convert(hsdk_convert_stats *out_stats, const char *source, const hsdk_open_options *source_options,
                                  const char *destination, const hsdk_convert_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_stats == nullptr || out_stats->struct_size >= sizeof(size_t));
        HSDK_CHECK_ARG(source != nullptr && destination != nullptr);
        HSDK_CHECK_ARG(options != nullptr);
        HSDK_READ_STRUCT(o, hsdk_convert_options, options, HSDK_CONVERT_OPTIONS_INIT);
        HSDK_CHECK_ARG(o.output_format != nullptr);
        nlohmann::json request{{"source", source},
                               {"destination", destination},
                               {"output_format", o.output_format},
                               {"compress", o.compress != 0},
                               {"threads", o.threads},
                               {"overwrite", o.overwrite != 0}};
        if (o.options != nullptr) request["options"] = o.options;
        if (o.cache != nullptr) request["cache"] = o.cache;
        if (auto r = capi::add_open_options(request, source_options, "source_format", true); !r) return capi::set_error(r.error());
        auto r = capi::run_typed("image.convert", request, o.cancel, o.progress, o.progress_user_data);
        if (!r) return capi::set_error(r.error());
        if (out_stats != nullptr) {
            const auto &j = r.value();
            hsdk_convert_stats s{sizeof(hsdk_convert_stats), j.at("virtual_size"), j.at("bytes_read"), j.at("bytes_written"),
                                 j.at("output_size"), j.at("seconds")};
            std::memcpy(out_stats, &s, std::min(out_stats->struct_size, sizeof s));
        }
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_compare(int *out_identical, uint64_t *out_first_difference, hsdk_image *a, hsdk_image *b,
                                  int strict) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_identical != nullptr && out_first_difference != nullptr);
        HSDK_CHECK_ARG(a != nullptr && b != nullptr);
        CompareOptions co;
        co.strict = strict != 0;
        auto r = compare(*a->image, *b->image, co);
        if (!r) return capi::set_error(r.error());
        *out_identical = r.value().identical ? 1 : 0;
        *out_first_difference = r.value().identical ? 0 : r.value().first_difference;
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_check_json(char **out_json, const char *path, const hsdk_open_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_json != nullptr);
        *out_json = nullptr;
        HSDK_CHECK_ARG(path != nullptr);
        nlohmann::json request{{"path", path}};
        if (auto r = capi::add_open_options(request, options, "format", false); !r) return capi::set_error(r.error());
        auto r = capi::run_typed("image.check", request, nullptr, nullptr, nullptr);
        if (!r) return capi::set_error(r.error());
        *out_json = capi::copy_out(capi::dump(r.value()));
        return HSDK_OK;
    });
}

}  // extern "C"
