#include "format/vmdk/extent.hpp"

#include "format/layer.hpp"

namespace hypersdk::format::vmdk {

void CheckSink::error(std::string message) { report_.add_corruption(std::move(message)); }

void push_run(std::vector<Extent> &out, std::uint64_t offset, std::uint64_t length, ExtentKind kind, std::uint64_t host_offset) {
    append_extent(out, Extent{offset, length, kind, 0, host_offset});
}

}  // namespace hypersdk::format::vmdk
