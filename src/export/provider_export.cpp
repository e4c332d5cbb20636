#include "export/provider_export.hpp"

#include "export/package.hpp"

#include <hypersdk/convert.hpp>
#include <hypersdk/hash.hpp>
#include <hypersdk/log.hpp>
#include <hypersdk/provider.hpp>

#include <fmt/format.h>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

namespace hypersdk::exporter {
namespace {

// The disk format files are written in, and their extension.
std::string disk_format(const std::string &format) { return format == "ova" || format == "ovf" ? "vmdk" : format; }

// Staged disks: converted under hidden names, renamed (or packed) once all are complete, removed
// on any failure.
struct Staging {
    std::vector<std::string> paths;
    bool keep = false;
    ~Staging() {
        if (keep) return;
        for (const auto &p : paths) ::unlink(p.c_str());
    }
};

std::string human(std::uint64_t bytes) {
    return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
}

Result<void> check_space(const std::string &folder, std::uint64_t disks_bytes) {
    struct statvfs st {};
    if (::statvfs(folder.c_str(), &st) != 0) return success();  // nothing to go by: let the writes tell
    const std::uint64_t free_bytes = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    const std::uint64_t needed = disks_bytes + disks_bytes / 5;
    if (needed <= free_bytes) return success();
    return fail(Errc::no_space, fmt::format("not enough space in '{}': the export needs about {} bytes ({}, 1.2 x the disks' {} "
                                            "bytes), {} bytes ({}) are free; free some, choose another --out, or give "
                                            "--no-space-check to try anyway",
                                            folder, needed, human(needed), disks_bytes, free_bytes, human(free_bytes)));
}

}  // namespace

Result<ExportResult> export_from_provider(const ExportOptions &o) {
    const auto started = std::chrono::steady_clock::now();
    HSDK_TRYV(o.cancel.check());
    const auto formats = export_formats();
    if (std::find(formats.begin(), formats.end(), o.format) == formats.end())
        return fail(Errc::invalid_argument, fmt::format("unknown export format '{}'", o.format));
    if (o.output_dir.empty()) return fail(Errc::invalid_argument, "no output folder given");
    HSDK_TRY(auto provider, find_provider(o.provider));
    if ((provider->capabilities() & static_cast<std::uint32_t>(ProviderCapability::block_reads)) == 0)
        return fail(Errc::unsupported, fmt::format("provider '{}' cannot export: it has no block reads", provider->name()));
    HSDK_TRY(auto session, provider->connect(o.provider_config, o.cancel));
    HSDK_TRY(auto vm, session->describe(o.vm));
    if (vm.disks.empty()) return fail(Errc::invalid_argument, fmt::format("VM '{}' has no disks to export", o.vm));

    std::error_code ec;
    std::filesystem::create_directories(o.output_dir, ec);
    if (ec) return fail(Errc::io_error, fmt::format("cannot create '{}': {}", o.output_dir, ec.message()));

    const std::string stem = file_stem(vm.name.empty() ? o.vm : vm.name);
    const std::string fmt_name = disk_format(o.format);
    std::vector<std::string> disk_names;
    for (std::size_t i = 0; i < vm.disks.size(); ++i) disk_names.push_back(fmt::format("{}-disk{}.{}", stem, i + 1, fmt_name));
    std::vector<std::string> finals;
    if (o.format == "ova") {
        finals = {fmt::format("{}/{}.ova", o.output_dir, stem)};
    } else {
        for (const auto &n : disk_names) finals.push_back(o.output_dir + "/" + n);
        if (o.format == "ovf") {
            finals.push_back(fmt::format("{}/{}.ovf", o.output_dir, stem));
            finals.push_back(fmt::format("{}/{}.mf", o.output_dir, stem));
        }
    }
    struct stat st {};
    if (!o.overwrite)
        for (const auto &f : finals)
            if (::lstat(f.c_str(), &st) == 0)
                return fail(Errc::conflict, fmt::format("'{}' exists already (give overwrite to replace it)", f));

    // Every disk opened as an image first: the sizes decide the space check.
    std::vector<std::unique_ptr<Image>> images;
    std::uint64_t total = 0, provisioned = 0;
    for (std::size_t i = 0; i < vm.disks.size(); ++i) {
        HSDK_TRY(auto source, session->open_disk(o.vm, i));
        OpenOptions open;
        open.format = vm.disks[i].file_format.empty() ? "raw" : vm.disks[i].file_format;
        open.open_backing = false;
        provisioned += std::max(vm.disks[i].capacity_bytes, source->size());
        HSDK_TRY(auto image, open_image_source(std::move(source), open));
        total += image->virtual_size();
        images.push_back(std::move(image));
    }
    if (o.space_check) HSDK_TRYV(check_space(o.output_dir, provisioned));

    ExportResult result;
    result.method = "block reads";
    Staging staging;
    std::vector<PackagedDisk> packaged;
    std::uint64_t done_before = 0;
    for (std::size_t i = 0; i < images.size(); ++i) {
        const std::string staged = fmt::format("{}/.{}.hsdk-export", o.output_dir, disk_names[i]);
        ::unlink(staged.c_str());
        staging.paths.push_back(staged);
        ConvertOptions co;
        co.output_format = fmt_name;
        co.format_options = o.format_options;
        if (fmt_name == "vmdk") co.format_options.emplace_back("subformat", "streamOptimized");
        co.compress = o.compress;
        co.threads = o.threads;
        co.cancel = o.cancel;
        const unsigned index = static_cast<unsigned>(i + 1), count = static_cast<unsigned>(images.size());
        co.progress = [&, index, count](const ProgressInfo &p) {
            if (!o.progress) return ProgressAction::proceed;
            ExportProgress e;
            e.phase = fmt::format("exporting disk {} of {}", index, count);
            e.disk_index = index;
            e.disk_count = count;
            e.disk_bytes_done = p.bytes_done;
            e.disk_bytes_total = p.bytes_total;
            e.bytes_done = done_before + p.bytes_done;
            e.bytes_total = total;
            e.rate_bytes_per_sec = p.rate_bytes_per_sec;
            e.eta_seconds = p.eta_seconds;
            e.disks_done = index - 1;
            return o.progress(e);
        };
        HSDK_TRY(auto stats, convert(*images[i], staged, co));
        result.bytes_received += stats.bytes_read;
        done_before += images[i]->virtual_size();
        PackagedDisk d{disk_names[i], staged, stats.output_size, ""};
        if (o.format == "ova" || o.format == "ovf") {
            HSDK_TRY(d.sha256, file_digest_hex(staged, DigestAlgorithm::sha256, o.cancel));
        }
        auto &disk = vm.disks[i];
        disk.file = disk_names[i];
        disk.file_format = fmt_name;
        disk.file_bytes = stats.output_size;
        disk.sha256 = d.sha256;
        if (disk.capacity_bytes == 0) disk.capacity_bytes = images[i]->virtual_size();
        packaged.push_back(std::move(d));
    }

    HSDK_TRYV(o.cancel.check());
    if (o.format == "ova") {
        HSDK_TRY(result.files, write_package(vm, packaged, "ova", o.output_dir, stem, o.cancel));
    } else {
        // Disks appear together; for OVF the descriptor then appears last.
        for (std::size_t i = 0; i < packaged.size(); ++i) {
            const std::string final_path = o.output_dir + "/" + disk_names[i];
            if (::rename(packaged[i].path.c_str(), final_path.c_str()) != 0)
                return fail(Errc::io_error, fmt::format("cannot rename into '{}'", final_path));
            packaged[i].path = final_path;
            result.files.push_back(final_path);
        }
        if (o.format == "ovf") {
            auto written = write_package(vm, packaged, "ovf", o.output_dir, stem, o.cancel);
            if (!written) {
                for (const auto &p : packaged) ::unlink(p.path.c_str());
                return fail(written.error());
            }
            result.files.insert(result.files.end(), written.value().begin(), written.value().end());
        }
    }
    result.vm = std::move(vm);
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log(LogLevel::info, fmt::format("export: {} from provider '{}': {} disk(s), {} bytes read, {:.1f} s", o.vm, o.provider,
                                    result.vm.disks.size(), result.bytes_received, result.seconds));
    return result;
}

}  // namespace hypersdk::exporter
