// import_to_kvm: an exported VM (OVF, OVA or VM JSON) becomes converted disks, a libvirt domain and
// a hyper2kvm manifest in one folder.
#include <hypersdk/kvm.hpp>

#include "io/artifact_crypto.hpp"
#include "io/compression.hpp"
#include "io/reference.hpp"
#include "io/atomic_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>

namespace hypersdk {
namespace {

// A disk of zeros: what an OVF Disk without a file (a blank disk) holds.
class ZeroDevice final : public BlockDevice {
public:
    explicit ZeroDevice(std::uint64_t size) : size_(size) {}
    std::uint64_t virtual_size() const noexcept override { return size_; }
    Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override {
        return std::vector<Extent>{Extent{offset, length, ExtentKind::hole}};
    }
    Result<void> read(std::uint64_t, std::span<std::byte> buf) override {
        std::memset(buf.data(), 0, buf.size());
        return success();
    }

private:
    std::uint64_t size_;
};

std::string lower_extension(const std::string &path) {
    const auto dot = path.rfind('.');
    const auto slash = path.rfind('/');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
    std::string e = path.substr(dot + 1);
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return e;
}

// Where disk i's bytes come from: a member of the OVA, a file next to the descriptor, or nothing.
// A file stored encrypted is decrypted (the method from its header) and one stored gzip-compressed
// (ovf:compression="gzip", ovftool --compress) decompressed, both as they are read.
Result<std::unique_ptr<BlockDevice>> open_source_disk(const std::string &from, const std::string &kind, const VmDisk &disk,
                                                      const std::vector<OvaMember> &members, const OvfDescriptor *ovf,
                                                      const KvmImportOptions &options) {
    if (disk.file.empty()) return std::unique_ptr<BlockDevice>(new ZeroDevice(disk.capacity_bytes));
    std::string compression;
    if (ovf != nullptr) {
        for (const auto &f : ovf->files)
            if (f.href == disk.file && !f.compression.empty() && f.compression != "identity") compression = f.compression;
    }
    if (!compression.empty() && compression != "gzip")
        return fail_unsupported(fmt::format("disk file '{}' is {}-compressed inside the package (gzip is read)", disk.file, compression));
    OpenOptions o;
    // The descriptor's format URI names the format; probe when it does not say.
    o.format = disk.file_format;
    io::apply_decryption_keys(o.http, options.keys);
    o.http.cancel = options.cancel;
    std::shared_ptr<ByteSource> stored;
    if (kind == "ova") {
        auto m = std::find_if(members.begin(), members.end(), [&](const OvaMember &x) { return x.name == disk.file; });
        if (m == members.end()) return fail_corrupt(fmt::format("OVA '{}' has no member '{}' for disk '{}'", from, disk.file, disk.id));
        HSDK_TRY(auto ova, open_byte_source(from, {}));
        HSDK_TRY(stored, byte_source_window(std::move(ova), m->offset, m->size, fmt::format("{}[{}]", from, m->name)));
    } else {
        HSDK_TRY(auto path, io::resolve_reference(from, disk.file, false, "disk file"));
        HttpSourceOptions keyed = o.http;
        keyed.decompress = false;  // the descriptor says whether it is compressed
        HSDK_TRY(stored, open_byte_source(path, keyed));
    }
    HSDK_TRY(auto readable, io::decrypt_source_if_encrypted(std::move(stored), options.keys, options.cancel));
    if (compression == "gzip") {
        HSDK_TRY(readable, io::open_decompressed_source(std::move(readable)));
    }
    HSDK_TRY(auto img, open_image_source(std::move(readable), o));
    return std::unique_ptr<BlockDevice>(std::move(img));
}

}  // namespace

Result<KvmImportResult> import_to_kvm(const std::string &from, const KvmImportOptions &options) {
    const std::string kind = lower_extension(from);
    KvmImportResult result;
    std::vector<OvaMember> members;
    std::optional<OvfDescriptor> ovf;
    if (kind == "ova") {
        if (options.verify) {
            HSDK_TRY(auto report, verify_ova(from, options.cancel));
            if (!report.problems.empty())
                return fail(Errc::checksum_mismatch, fmt::format("OVA '{}' failed verification: {}", from, report.problems.front()));
        }
        HSDK_TRY(auto listed, list_ova(from));
        members = std::move(listed);
        auto desc = std::find_if(members.begin(), members.end(), [](const OvaMember &m) { return lower_extension(m.name) == "ovf"; });
        if (desc == members.end()) return fail_corrupt(fmt::format("OVA '{}' holds no .ovf descriptor", from));
        HSDK_TRY(auto text, read_ova_member(from, *desc, 64u << 20));
        HSDK_TRY(auto parsed, parse_ovf(text, fmt::format("OVF descriptor '{}' in '{}'", desc->name, from), options.ovf));
        ovf = std::move(parsed);
        result.vm = ovf->vm;
    } else if (kind == "ovf") {
        HSDK_TRY(auto parsed, read_ovf_file(from, options.ovf));
        ovf = std::move(parsed);
        result.vm = ovf->vm;
    } else {
        HSDK_TRY(auto vm, load_vm_description(from, options.ovf));
        result.vm = std::move(vm);
    }
    const KvmOptions &kvm = options.kvm;
    // Validate everything cheap before the long conversions, and before creating anything.
    const std::string name = kvm.name.empty() ? result.vm.name : kvm.name;
    HSDK_TRY(auto xml, libvirt_domain_xml(result.vm, kvm));
    std::error_code ec;
    std::filesystem::create_directories(kvm.disk_dir, ec);
    if (ec) return fail(Errc::io_error, fmt::format("cannot create output folder '{}': {}", kvm.disk_dir, ec.message()));
    result.domain_xml_path = disk_path(kvm.disk_dir, name + ".xml");
    result.manifest_path = disk_path(kvm.disk_dir, name + ".hyper2kvm.json");

    for (std::size_t i = 0; i < result.vm.disks.size(); ++i) {
        HSDK_TRYV(options.cancel.check());
        const auto &disk = result.vm.disks[i];
        HSDK_TRY(auto source, open_source_disk(from, kind, disk, members, ovf ? &*ovf : nullptr, options));
        if (disk.capacity_bytes != 0 && source->virtual_size() < disk.capacity_bytes)
            return fail_corrupt(fmt::format("disk '{}' is {} bytes, smaller than the {} its descriptor declares", disk.file,
                                            source->virtual_size(), disk.capacity_bytes));
        const std::string out = disk_path(kvm.disk_dir, converted_disk_name(disk, i, kvm.disk_format));
        ConvertOptions co;
        co.output_format = kvm.disk_format;
        co.format_options = options.format_options;
        co.compress = options.compress;
        co.threads = options.threads;
        co.overwrite = options.overwrite;
        co.cancel = options.cancel;
        const std::string phase = fmt::format("converting disk {} of {}", i + 1, result.vm.disks.size());
        if (options.progress)
            co.progress = [&, phase](const ProgressInfo &p) {
                ProgressInfo q = p;
                q.phase = phase;
                return options.progress(q);
            };
        auto converted = convert(*source, out, co);
        if (!converted) return fail(converted.error().with_context(fmt::format("disk {} ('{}')", i + 1, disk.file.empty() ? disk.id : disk.file)));
        result.disks.push_back(out);
    }

    HSDK_TRY(auto manifest, hyper2kvm_manifest(result.vm, kvm, options.cancel));
    {
        io::AtomicOutputSet out;
        HSDK_TRY(auto *f, out.add(result.domain_xml_path, options.overwrite));
        HSDK_TRYV(f->write_all(0, std::as_bytes(std::span(xml.data(), xml.size()))));
        HSDK_TRYV(out.commit());
    }
    HSDK_TRYV(write_json_file(result.manifest_path, manifest));
    return result;
}

}  // namespace hypersdk
