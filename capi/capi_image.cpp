// C ABI: images, conversion, comparison, checking.
#include "capi_internal.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/disk.hpp>

#include <cstdlib>
#include <cstring>

struct hsdk_image {
    std::unique_ptr<hypersdk::Image> image;
};

namespace hypersdk::capi {
namespace {

// Reads a caller's options struct, tolerating older (smaller) versions of it.
OpenOptions open_options_from(const hsdk_open_options *o) {
    OpenOptions out;
    if (o == nullptr) return out;
    const hsdk_open_options copy = capi::read_struct<hsdk_open_options>(o, HSDK_OPEN_OPTIONS_INIT);
    if (copy.format) out.format = copy.format;
    out.allow_external_files = copy.allow_external_files != 0;
    out.open_backing = copy.open_backing != 0;
    return out;
}

char *copy_string(const std::string &s) {
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (p == nullptr) throw std::bad_alloc();
    std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
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
        HSDK_CHECK_ARG(options == nullptr || options->struct_size >= sizeof(size_t));
        auto image = open_image(path, capi::open_options_from(options));
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
        *out_json = capi::copy_string(j.dump());
        return HSDK_OK;
    });
}

HSDK_API hsdk_status hsdk_probe_format(char **out_name, const char *path) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_name != nullptr);
        *out_name = nullptr;
        HSDK_CHECK_ARG(path != nullptr);
        auto name = probe_format(path);
        if (!name) return capi::set_error(name.error());
        *out_name = capi::copy_string(name.value());
        return HSDK_OK;
    });
}

HSDK_API void hsdk_string_free(char *string) { std::free(string); }

HSDK_API hsdk_status hsdk_convert(hsdk_convert_stats *out_stats, const char *source, const hsdk_open_options *source_options,
                                  const char *destination, const hsdk_convert_options *options) {
    return capi::guard([&]() -> hsdk_status {
        HSDK_CHECK_ARG(out_stats == nullptr || out_stats->struct_size >= sizeof(size_t));
        HSDK_CHECK_ARG(source != nullptr && destination != nullptr);
        HSDK_CHECK_ARG(options != nullptr && options->struct_size >= sizeof(size_t));
        const hsdk_convert_options o = capi::read_struct<hsdk_convert_options>(options, HSDK_CONVERT_OPTIONS_INIT);
        HSDK_CHECK_ARG(o.output_format != nullptr);
        ConvertOptions co;
        co.output_format = o.output_format;
        auto parsed = capi::format_options_from(o.options);
        if (!parsed) return capi::set_error(parsed.error());
        co.format_options = std::move(parsed).value();
        co.compress = o.compress != 0;
        co.threads = o.threads;
        co.overwrite = o.overwrite != 0;
        if (o.cache != nullptr) {
            if (auto set = set_cache_mode(co, o.cache); !set) return capi::set_error(set.error());
        }
        co.cancel = capi::token_of(o.cancel);
        if (o.progress != nullptr) {
            auto fn = o.progress;
            void *ud = o.progress_user_data;
            co.progress = [fn, ud](const ProgressInfo &p) {
                hsdk_progress cp{sizeof(hsdk_progress), p.phase.c_str(), p.bytes_done, p.bytes_total, p.rate_bytes_per_sec,
                                 p.eta_seconds};
                return fn(&cp, ud) != 0 ? ProgressAction::cancel : ProgressAction::proceed;
            };
        }
        auto stats = convert(source, capi::open_options_from(source_options), destination, co);
        if (!stats) return capi::set_error(stats.error());
        if (out_stats != nullptr) {
            hsdk_convert_stats s{sizeof(hsdk_convert_stats), stats.value().virtual_size, stats.value().bytes_read,
                                 stats.value().bytes_written, stats.value().output_size, stats.value().seconds};
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
        auto r = check_image(path, capi::open_options_from(options));
        if (!r) return capi::set_error(r.error());
        const auto &c = r.value();
        nlohmann::json j{{"filename", path}, {"format", c.format}, {"clean", c.clean},     {"check-errors", c.errors},
                         {"leaks", c.leaks}, {"messages", c.messages}};
        if (c.total_clusters) {
            j["allocated-clusters"] = c.allocated_clusters;
            j["total-clusters"] = c.total_clusters;
        }
        if (c.image_end_offset) j["image-end-offset"] = *c.image_end_offset;
        *out_json = capi::copy_string(j.dump());
        return HSDK_OK;
    });
}

}  // extern "C"
