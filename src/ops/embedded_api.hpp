// The files of api/ compiled into the library (cmake/EmbedApi.cmake writes the table).
#pragma once

#include <cstddef>

namespace hypersdk::ops {

struct EmbeddedApiFile {
    const char *name;  // "image.convert.json", "common.json"
    const char *text;
};

extern const EmbeddedApiFile embedded_api_files[];
extern const std::size_t embedded_api_file_count;

}  // namespace hypersdk::ops
