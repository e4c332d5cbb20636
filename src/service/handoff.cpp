#include "service/handoff.hpp"

#include "service/util.hpp"

#include <hypersdk/hash.hpp>
#include <hypersdk/version.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace hypersdk::service {
namespace fs = std::filesystem;
namespace {

bool handoff_is_disk(const fs::path &p) {
    const auto ext = p.extension().string();
    for (const char *e : {".vmdk", ".qcow2", ".raw", ".img", ".vhd", ".vhdx", ".vdi"})
        if (ext == e) return true;
    return false;
}

std::string handoff_os_hint(const std::string &guest) {
    std::string g = guest;
    for (auto &c : g) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (g.find("win") != std::string::npos) return "windows";
    for (const char *l : {"linux", "rhel", "centos", "ubuntu", "debian", "sles", "suse", "fedora", "oracle", "photon", "coreos", "alma", "rocky"})
        if (g.find(l) != std::string::npos) return "linux";
    if (g.find("freebsd") != std::string::npos) return "freebsd";
    return g.empty() ? "unknown" : "other";
}

std::string handoff_source_format(const std::string &file, const std::string &known) {
    if (!known.empty()) return known;
    auto ext = fs::path(file).extension().string();
    if (!ext.empty()) ext.erase(0, 1);
    return ext == "img" ? "raw" : ext;
}

Result<void> write_atomically(const fs::path &path, const std::string &text) {
    const fs::path tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        out.flush();
        if (!out) return fail(Errc::io_error, "cannot write " + tmp.string());
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp, ec);
        return fail(Errc::io_error, "cannot rename " + tmp.string() + " to " + path.string());
    }
    return success();
}

// Into `dir` whole: a rename when it can, else a copy under a dot-name that no watcher takes as a
// disk, flushed, then renamed.
Result<fs::path> place_into(const fs::path &file, const fs::path &dir) {
    const fs::path target = dir / file.filename();
    std::error_code ec;
    if (fs::exists(target, ec)) return fail(Errc::conflict, "the watch directory already has " + target.string());
    fs::rename(file, target, ec);
    if (!ec) return target;
    if (ec != std::errc::cross_device_link) return fail(Errc::io_error, fmt::format("cannot move {} to {}: {}", file.string(), target.string(), ec.message()));
    const fs::path partial = dir / ("." + file.filename().string() + ".partial");
    fs::copy_file(file, partial, fs::copy_options::overwrite_existing, ec);
    if (ec) {
        fs::remove(partial, ec);
        return fail(Errc::io_error, fmt::format("cannot copy {} to {}", file.string(), dir.string()));
    }
    const int fd = ::open(partial.c_str(), O_RDONLY | O_CLOEXEC);
    const bool synced = fd >= 0 && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    if (!synced) {
        fs::remove(partial, ec);
        return fail(Errc::io_error, "cannot flush " + partial.string());
    }
    fs::rename(partial, target, ec);
    if (ec) {
        fs::remove(partial, ec);
        return fail(Errc::io_error, "cannot rename " + partial.string());
    }
    fs::remove(file, ec);
    return target;
}

}  // namespace

Result<nlohmann::json> artifact_manifest(const JobRecord &job, const nlohmann::json &result, const nlohmann::json &settings) {
    const auto vm = result.value("vm", nlohmann::json::object());
    const std::string out_dir = job.definition.value("output_dir", "");
    const std::string inventory = vm.value("inventory_path", job.vm_path);
    std::string datacenter;
    if (inventory.size() > 1 && inventory[0] == '/') datacenter = inventory.substr(1, inventory.find('/', 1) - 1);
    nlohmann::json disks = nlohmann::json::array();
    nlohmann::json warnings = nlohmann::json::array();
    // Disks the export named, in VM order; else every disk file it wrote.
    std::vector<std::pair<nlohmann::json, std::string>> files;
    for (const auto &d : vm.value("disks", nlohmann::json::array()))
        if (d.contains("file") && d["file"].is_string()) files.emplace_back(d, d["file"].get<std::string>());
    if (files.empty())
        for (const auto &f : result.value("files", nlohmann::json::array()))
            if (f.is_string() && handoff_is_disk(f.get<std::string>())) files.emplace_back(nlohmann::json::object(), f.get<std::string>());
    if (files.empty()) return fail(Errc::not_found, "the export wrote no disk file to hand over");
    int index = 0;
    for (auto &[d, file] : files) {
        fs::path path = fs::path(file).is_absolute() ? fs::path(file) : fs::path(out_dir) / file;
        std::error_code ec;
        const auto bytes = fs::file_size(path, ec);
        if (ec) return fail(Errc::not_found, "disk file " + path.string() + " is missing");
        std::string sha = d.value("sha256", "");
        if (sha.empty()) {
            HSDK_TRY(auto hex, file_digest_hex(path.string(), DigestAlgorithm::sha256));
            sha = hex;
        }
        const auto boot = d.contains("boot_order") && d["boot_order"].is_number() ? d["boot_order"].get<int>() : (index == 0 ? 1 : 0);
        disks.push_back({{"id", d.value("id", fmt::format("disk-{}", index))},
                         {"source_format", handoff_source_format(path.string(), d.value("file_format", ""))},
                         {"bytes", bytes},
                         {"local_path", fs::absolute(path).string()},
                         {"checksum", "sha256:" + sha},
                         {"boot_order_hint", boot},
                         {"label", d.value("label", path.filename().string())},
                         {"disk_type", boot == 1 ? "os" : "data"}});
        ++index;
    }
    nlohmann::json nics = nlohmann::json::array();
    for (const auto &n : vm.value("nics", nlohmann::json::array()))
        nics.push_back({{"mac", n.value("mac", "")}, {"network", n.value("network", "")}, {"adapter_type", n.value("adapter", n.value("model", ""))}});
    const std::string firmware = vm.value("firmware", "bios") == "bios" ? "bios" : "uefi";
    const std::string name = vm.value("name", job.name);
    const std::string format = settings.value("default_format", "qcow2");
    nlohmann::json notes = nlohmann::json::array({fmt::format("exported by hypersdk {} (job {})", hypersdk::version(), job.id)});
    if (job.definition.contains("options") && job.definition["options"].value("shutdown_vm", false))
        warnings.push_back("options.shutdown_vm: the VM was not shut down; a running VM is exported from a snapshot");
    return nlohmann::json{
        {"manifest_version", "1.0"},
        {"source",
         {{"provider", job.definition.value("provider", "vsphere")},
          {"vm_id", vm.value("id", job.vm_path)},
          {"vm_name", name},
          {"datacenter", datacenter},
          {"export_timestamp", rfc3339(Clock::now())},
          {"export_method", result.value("method", "")}}},
        {"vm",
         {{"cpu", vm.value("cpus", 1)},
          {"mem_gb", static_cast<double>(vm.value("memory_mib", 0)) / 1024.0},
          {"firmware", firmware},
          {"secureboot", vm.value("secure_boot", false)},
          {"os_hint", handoff_os_hint(vm.value("guest_id", ""))},
          {"os_version", vm.value("guest_os_description", vm.value("guest_id", ""))}}},
        {"disks", disks},
        {"nics", nics},
        {"notes", notes},
        {"warnings", warnings},
        {"output", {{"directory", settings.value("output_dir", out_dir)}, {"format", format}, {"filename", name + "." + format}}}};
}

Result<nlohmann::json> hyper2kvm_handoff(const JobRecord &job, const nlohmann::json &result, const nlohmann::json &settings) {
    HSDK_TRY(auto manifest, artifact_manifest(job, result, settings));
    const fs::path out_dir = job.definition.value("output_dir", "");
    nlohmann::json placed = {{"disks", nlohmann::json::array()}};
    const bool daemon_mode = job.handoff.value("daemon_mode", false);
    if (daemon_mode) {
        std::string watch = settings.value("watch_dir", "");
        if (watch.empty()) return fail(Errc::invalid_argument, "daemon_mode needs hyper2kvm.watch_dir in the daemon's config");
        fs::path dir = watch;
        const std::string instance = job.handoff.value("instance", "");
        if (!instance.empty()) {
            if (instance.find('/') != std::string::npos || instance == ".." || instance == ".")
                return fail(Errc::invalid_argument, "hyper2kvm_integration.instance must be a plain name");
            dir /= instance;
        }
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) return fail(Errc::io_error, "cannot create the watch directory " + dir.string());
        for (auto &disk : manifest["disks"]) {
            HSDK_TRY(auto target, place_into(disk["local_path"].get<std::string>(), dir));
            disk["local_path"] = target.string();
            placed["disks"].push_back(target.string());
        }
        placed["watch_dir"] = dir.string();
        const fs::path watch_manifest = dir / (manifest["source"]["vm_name"].get<std::string>() + "." + job.id.substr(0, 8) + ".manifest.json");
        HSDK_TRYV(write_atomically(watch_manifest, manifest.dump(2)));
        placed["watch_manifest"] = watch_manifest.string();
    }
    const fs::path path = out_dir / "artifact-manifest.json";
    HSDK_TRYV(write_atomically(path, manifest.dump(2)));
    placed["manifest"] = path.string();
    return placed;
}

}  // namespace hypersdk::service
