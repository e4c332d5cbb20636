// Which machine type, buses and devices suit a guest: decided from what the source says it runs.
#include <hypersdk/kvm.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>

namespace hypersdk {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool contains_any(const std::string &s, std::initializer_list<const char *> needles) {
    for (const char *n : needles)
        if (s.find(n) != std::string::npos) return true;
    return false;
}

}  // namespace

GuestProfile guest_profile(const VirtualMachine &vm, const KvmOptions &options) {
    // vSphere guestId (rhel8_64Guest, windows9Server64Guest, winXPProGuest), VirtualBox OSType
    // (Ubuntu_64, WindowsXP), or the OVF description text.
    const std::string id = lower(vm.guest_id);
    const std::string desc = lower(vm.guest_os_description);
    const std::string all = id + " " + desc;
    GuestProfile p;
    if (id.rfind("win", 0) == 0 || contains_any(all, {"windows", "microsoft"})) {
        p.family = "windows";
        // NT-era Windows lacks AHCI and q35 support out of the box.
        p.legacy = contains_any(id, {"winnt", "win2000", "win31", "win95", "win98", "winme", "winxp", "winnet", "windowsxp",
                                     "windows2000", "windowsnt", "windows2003", "windows98", "windows95"}) ||
                   contains_any(desc, {"windows xp", "windows 2000", "windows server 2003", "windows nt", "windows 98"});
    } else if (contains_any(all, {"linux", "rhel", "centos", "ubuntu", "debian", "sles", "suse", "fedora", "redhat", "oracle",
                                  "mandrake", "mandriva", "turbolinux", "asianux", "coreos", "photon", "amazon", "rocky", "alma",
                                  "gentoo", "arch", "vmwarephoton"}) ||
               vm.ovf_os_id == 36 || vm.ovf_os_id == 101) {
        p.family = "linux";
        // Kernels before 2.6.25 have no virtio; these ids name such distributions.
        p.legacy = contains_any(id, {"rhel2", "rhel3", "rhel4", "other24xlinux", "linux22", "linux24", "redhatguest",
                                     "suseguest", "slesguest", "sles64guest", "mandrake", "turbolinux", "nld9"});
    } else {
        p.family = "other";
    }
    const bool modern_linux = p.family == "linux" && !p.legacy;
    const bool windows_with_drivers = p.family == "windows" && !p.legacy && options.windows_virtio;
    p.virtio = modern_linux || windows_with_drivers;
    p.machine = (p.legacy && vm.firmware == Firmware::bios) ? "pc" : "q35";
    if (!options.machine.empty()) p.machine = options.machine;
    if (p.virtio) p.disk_bus = "virtio";
    else if (p.machine == "pc" && p.legacy) p.disk_bus = "ide";
    else p.disk_bus = "sata";
    if (p.virtio) p.nic_model = "virtio";
    else if (p.legacy && p.family == "windows") p.nic_model = "rtl8139";
    else if (p.legacy) p.nic_model = "e1000";
    else p.nic_model = "e1000e";
    p.video = modern_linux ? "virtio" : "vga";
    return p;
}

std::string disk_path(const std::string &folder, const std::string &name) {
    std::filesystem::path p = std::filesystem::path(folder.empty() ? "." : folder) / name;
    std::error_code ec;
    auto abs = std::filesystem::absolute(p, ec);
    std::string out = (ec ? p : abs).lexically_normal().string();
    if (out.size() > 1 && out.back() == '/') out.pop_back();
    return out;
}

std::string converted_disk_name(const VmDisk &disk, std::size_t index, const std::string &format) {
    std::string stem;
    if (!disk.file.empty()) {
        stem = disk.file;
        const auto slash = stem.find_last_of("/\\");
        if (slash != std::string::npos) stem = stem.substr(slash + 1);
        const auto dot = stem.rfind('.');
        if (dot != std::string::npos && dot > 0) stem = stem.substr(0, dot);
    }
    if (stem.empty()) stem = disk.id.empty() ? "disk" + std::to_string(index + 1) : disk.id;
    // Keep names plain: they land in a folder of ours.
    for (char &c : stem)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
    return stem + "." + (format == "vpc" ? "vhd" : format);
}

}  // namespace hypersdk
