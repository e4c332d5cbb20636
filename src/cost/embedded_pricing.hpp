// The files of pricing/ compiled into the library (cmake/EmbedPricing.cmake writes the table).
#pragma once

#include <cstddef>

namespace hypersdk::cost {

struct EmbeddedPricingFile {
    const char *name;  // relative to pricing/: "s3/us-east-1.json"
    const char *text;
};

extern const EmbeddedPricingFile embedded_pricing_files[];
extern const std::size_t embedded_pricing_file_count;

}  // namespace hypersdk::cost
