// hyper2kvm's artifact manifest: what was exported, where it lies, and how to run it.
#include <hypersdk/hash.hpp>
#include <hypersdk/kvm.hpp>
#include <hypersdk/version.hpp>

#include "io/atomic_output.hpp"
#include "io/file.hpp"

#include <fmt/format.h>

#include <chrono>
#include <ctime>

namespace hypersdk {
namespace {

std::string utc_now() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

Result<nlohmann::json> hyper2kvm_manifest(const VirtualMachine &vm, const KvmOptions &options, const CancelToken &cancel) {
    HSDK_TRYV(check_kvm_options(vm, options));
    const GuestProfile p = guest_profile(vm, options);
    nlohmann::json disks = nlohmann::json::array();
    for (std::size_t i = 0; i < vm.disks.size(); ++i) {
        const auto &d = vm.disks[i];
        const std::string path = disk_path(options.disk_dir, converted_disk_name(d, i, options.disk_format));
        HSDK_TRY(auto file, io::File::open_read(path));
        HSDK_TRY(auto bytes, file.size());
        HSDK_TRY(auto sha, file_digest_hex(path, DigestAlgorithm::sha256, cancel));
        disks.push_back({{"id", d.id.empty() ? fmt::format("disk{}", i + 1) : d.id},
                         {"label", d.label},
                         {"format", options.disk_format},
                         {"bytes", bytes},
                         {"virtual_size", d.capacity_bytes},
                         {"local_path", path},
                         {"sha256", sha},
                         {"boot_order", d.boot_order ? nlohmann::json(*d.boot_order) : nlohmann::json(nullptr)},
                         {"bus", p.disk_bus},
                         {"source_file", d.backing_file.empty() ? d.file : d.backing_file},
                         {"source_controller", d.controller}});
    }
    nlohmann::json nics = nlohmann::json::array();
    for (const auto &n : vm.nics)
        nics.push_back({{"mac", n.mac}, {"network", n.network}, {"source_adapter", n.adapter_type}, {"model", p.nic_model}});
    return nlohmann::json{
        {"manifest_version", 1},
        {"generator", {{"name", "hypersdk"}, {"version", std::string(version())}}},
        {"created", utc_now()},
        {"source",
         {{"provider", vm.provider}, {"vm_id", vm.id}, {"name", vm.name}, {"uuid", vm.uuid}, {"inventory_path", vm.inventory_path}}},
        {"vm",
         {{"cpu", {{"count", vm.cpus}, {"sockets", vm.cpus / std::max(1, vm.cores_per_socket)}, {"cores_per_socket", vm.cores_per_socket}}},
          {"memory_mib", vm.memory_mib},
          {"firmware", firmware_name(vm.firmware)},
          {"secure_boot", vm.secure_boot},
          {"machine", p.machine},
          {"os",
           {{"family", p.family},
            {"guest_id", vm.guest_id},
            {"description", vm.guest_os_description},
            {"legacy", p.legacy},
            {"virtio", p.virtio}}}}},
        {"disks", std::move(disks)},
        {"nics", std::move(nics)},
        {"output", {{"directory", disk_path(options.disk_dir, "")}, {"format", options.disk_format}}}};
}

Result<void> write_json_file(const std::string &path, const nlohmann::json &document) {
    io::AtomicOutputSet out;
    HSDK_TRY(auto *file, out.add(path));
    const std::string text = document.dump(2) + "\n";
    HSDK_TRYV(file->write_all(0, std::as_bytes(std::span(text.data(), text.size()))));
    return out.commit();
}

}  // namespace hypersdk
