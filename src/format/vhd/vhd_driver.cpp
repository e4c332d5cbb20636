// The VHD driver's entry in the driver list ("vhd", alias "vpc" as qemu calls it).
#include "format/drivers.hpp"
#include "format/vhd/vhd_driver.hpp"
#include "format/vhd/vhd_format.hpp"

namespace hypersdk::format {
namespace {

// Dynamic and differencing disks start with a copy of their footer.
int probe_vhd(std::span<const std::byte> head, std::uint64_t /*file_size*/) {
    return vhd::has_footer_cookie(head) ? 100 : 0;
}

// A fixed disk has its footer only at the end (qemu-img cannot probe those; we can). Demand a
// valid checksum, the fixed type and a size that matches the file, so that a disk's last sector
// that merely looks like a footer does not turn it into a VHD; a signature at the start of the file
// still wins (score below 100).
int probe_vhd_tail(std::span<const std::byte> tail, std::uint64_t file_size) {
    if (tail.size() != vhd::footer_size || !vhd::has_footer_cookie(tail)) return 0;
    const auto bytes = tail.first<vhd::footer_size>();
    if (!vhd::footer_checksum_ok(bytes)) return 0;
    const auto footer = vhd::parse_footer(bytes);
    if (footer.disk_type != static_cast<std::uint32_t>(vhd::DiskType::fixed)) return 0;
    if (footer.current_size + vhd::footer_size != file_size && vhd::virtual_size_of(footer) + vhd::footer_size != file_size) return 0;
    return 95;
}

}  // namespace

const Driver &vhd_driver() {
    static const Driver d{"vhd", {"vpc"}, &probe_vhd, &vhd::open_vhd, &vhd::create_vhd, &probe_vhd_tail};
    return d;
}

}  // namespace hypersdk::format
