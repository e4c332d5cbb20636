// VHDX (Hyper-V virtual hard disk v2): reads dynamic, fixed and differencing disks, replaying a
// dirty log in memory; writes dynamic and fixed disks.
#include "format/drivers.hpp"
#include "format/vhdx/constants.hpp"
#include "format/vhdx/vhdx.hpp"

#include <cstring>

namespace hypersdk::format {

namespace vhdx {
int probe(std::span<const std::byte> head, std::uint64_t) {
    return head.size() >= 8 && std::memcmp(head.data(), file_signature, 8) == 0 ? 100 : 0;
}
}  // namespace vhdx

const Driver &vhdx_driver() {
    static const Driver d{"vhdx", {}, &vhdx::probe, &vhdx::open, &vhdx::create};
    return d;
}

}  // namespace hypersdk::format
