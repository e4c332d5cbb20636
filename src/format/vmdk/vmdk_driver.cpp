// The "vmdk" driver entry: probing, opening (VmdkLayer) and creating (one writer per subformat).
#include "format/drivers.hpp"
#include "format/vmdk/descriptor.hpp"
#include "format/vmdk/sparse_header.hpp"
#include "format/vmdk/vmdk_layer.hpp"
#include "format/vmdk/writers.hpp"

#include <string_view>

namespace hypersdk::format {
namespace {

int probe_vmdk(std::span<const std::byte> head, std::uint64_t) {
    if (vmdk::has_kdmv_magic(head) || vmdk::has_cowd_magic(head)) return 100;
    const std::string_view text(reinterpret_cast<const char *>(head.data()), head.size());
    return vmdk::looks_like_descriptor(text) ? 100 : 0;
}

Result<std::unique_ptr<Layer>> open_vmdk(OpenRequest req) { return vmdk::VmdkLayer::open(std::move(req)); }

Result<std::unique_ptr<DiskWriter>> create_vmdk(const CreateRequest &req) {
    HSDK_TRY(auto settings, vmdk::parse_writer_settings(req));
    switch (settings.subformat) {
    case vmdk::Subformat::stream_optimized: return vmdk::create_stream_optimized(req, settings);
    case vmdk::Subformat::monolithic_sparse: return vmdk::create_monolithic_sparse(req, settings);
    case vmdk::Subformat::monolithic_flat: return vmdk::create_monolithic_flat(req, settings);
    }
    return fail(Errc::internal, "unknown VMDK subformat");
}

}  // namespace

const Driver &vmdk_driver() {
    static const Driver d{"vmdk", {}, &probe_vmdk, &open_vmdk, &create_vmdk};
    return d;
}

}  // namespace hypersdk::format
