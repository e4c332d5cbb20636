// The VHD driver's entry in the driver list ("vhd", alias "vpc" as qemu calls it).
#include "format/drivers.hpp"
#include "format/vhd/vhd_driver.hpp"
#include "format/vhd/vhd_format.hpp"

namespace hypersdk::format {
namespace {

// Dynamic and differencing disks start with a copy of their footer. A fixed disk has its footer
// only at the end, which probing (the file's first bytes) cannot see: name the format for those,
// as with qemu-img (-f vhd / -f vpc).
int probe_vhd(std::span<const std::byte> head, std::uint64_t /*file_size*/) {
    return vhd::has_footer_cookie(head) ? 100 : 0;
}

}  // namespace

const Driver &vhd_driver() {
    static const Driver d{"vhd", {"vpc"}, &probe_vhd, &vhd::open_vhd, &vhd::create_vhd};
    return d;
}

}  // namespace hypersdk::format
