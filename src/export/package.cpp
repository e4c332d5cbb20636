#include "export/package.hpp"

#include "io/atomic_output.hpp"
#include "io/file.hpp"

#include <hypersdk/hash.hpp>
#include <hypersdk/ovf.hpp>

#include <fmt/format.h>

#include <unistd.h>

namespace hypersdk::exporter {

std::string file_stem(const std::string &name) {
    std::string out;
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        out += (c == '/' || c == '\\' || u < 0x20 || u == 0x7f) ? '_' : c;
    }
    while (!out.empty() && out.front() == '.') out.erase(0, 1);
    return out.empty() ? std::string("vm") : out;
}

Result<std::vector<std::string>> write_package(const VirtualMachine &vm, const std::vector<PackagedDisk> &disks_in_order,
                                               const std::string &format, const std::string &output_dir,
                                               const std::string &stem, const CancelToken &cancel,
                                               const std::string &ova_destination) {
    std::vector<OvfWriteFile> files;
    for (const auto &d : disks_in_order) files.push_back(OvfWriteFile{d.name, d.size, d.compression});
    const std::string ovf_name = stem + ".ovf";
    const std::string mf_name = stem + ".mf";
    const std::string descriptor = write_ovf(vm, files);
    std::vector<ManifestEntry> mf{{"SHA256", ovf_name, sha256_hex(descriptor)}};
    for (const auto &d : disks_in_order) mf.push_back(ManifestEntry{"SHA256", d.name, d.sha256});
    const std::string manifest = format_manifest(mf);

    if (format == "ovf") {
        io::AtomicOutputSet set;
        HSDK_TRY(io::File * mf_file, set.add(output_dir + "/" + mf_name, true));
        HSDK_TRYV(mf_file->write_all(0, std::as_bytes(std::span(manifest))));
        HSDK_TRY(io::File * ovf_file, set.add(output_dir + "/" + ovf_name, true));
        HSDK_TRYV(ovf_file->write_all(0, std::as_bytes(std::span(descriptor))));
        HSDK_TRYV(set.commit());
        return std::vector<std::string>{output_dir + "/" + mf_name, output_dir + "/" + ovf_name};
    }
    if (format != "ova") return fail(Errc::invalid_argument, fmt::format("no package format '{}'", format));

    const std::string ova_path = ova_destination.empty() ? fmt::format("{}/{}.ova", output_dir, stem) : ova_destination;
    const std::string tmp_ovf = fmt::format("{}/.{}.hsdk-tmp", output_dir, ovf_name);
    const std::string tmp_mf = fmt::format("{}/.{}.hsdk-tmp", output_dir, mf_name);
    auto write_tmp = [](const std::string &path, const std::string &text) -> Result<void> {
        ::unlink(path.c_str());
        HSDK_TRY(auto f, io::File::create_new(path));
        HSDK_TRYV(f.write_all(0, std::as_bytes(std::span(text))));
        return f.close();
    };
    auto packed = [&]() -> Result<void> {
        HSDK_TRYV(write_tmp(tmp_ovf, descriptor));
        HSDK_TRYV(write_tmp(tmp_mf, manifest));
        std::vector<OvaPackInput> members{{ovf_name, tmp_ovf}, {mf_name, tmp_mf}};
        for (const auto &d : disks_in_order) members.push_back(OvaPackInput{d.name, d.path});
        return pack_ova(ova_path, members, cancel);
    }();
    ::unlink(tmp_ovf.c_str());
    ::unlink(tmp_mf.c_str());
    HSDK_TRYV(packed);
    return std::vector<std::string>{ova_path};
}

}  // namespace hypersdk::exporter
