// The VDI driver's entry in the driver list.
#include "format/drivers.hpp"
#include "format/vdi/vdi_driver.hpp"
#include "format/vdi/vdi_format.hpp"

#include "core/endian.hpp"

namespace hypersdk::format {
namespace {

// The signature after the 64-byte text identifies a VDI; the text itself varies by creator
// (innotek, Sun, Oracle, QEMU).
int probe_vdi(std::span<const std::byte> head, std::uint64_t /*file_size*/) {
    if (head.size() < vdi::header_area) return 0;
    return le32(head.data(), 0x40) == vdi::signature ? 100 : 0;
}

}  // namespace

const Driver &vdi_driver() {
    static const Driver d{"vdi", {}, &probe_vdi, &vdi::open_vdi, &vdi::create_vdi};
    return d;
}

}  // namespace hypersdk::format
