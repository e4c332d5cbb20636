// OVA packages: list, read, verify against the manifest, pack.
#include <hypersdk/ovf.hpp>

#include "io/digest_range.hpp"
#include "io/atomic_output.hpp"
#include "io/file.hpp"
#include "io/tar.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sys/stat.h>

namespace hypersdk {
namespace {

std::string lower_ext(const std::string &name) {
    auto dot = name.rfind('.');
    std::string e = dot == std::string::npos ? "" : name.substr(dot + 1);
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return e;
}

// Shared by the OVA and the unpacked-folder checks: `open_member(name)` gives (file, offset, size).
struct MemberSource {
    std::vector<std::string> names;  // in package order
    std::function<Result<std::tuple<const io::File *, std::uint64_t, std::uint64_t>>(const std::string &)> locate;
    std::function<Result<std::string>(const std::string &, std::uint64_t)> read_text;
};

Result<OvaVerifyReport> verify_members(const MemberSource &src, bool descriptor_must_be_first, const std::string &what,
                                       const CancelToken &cancel) {
    OvaVerifyReport report;
    for (const auto &n : src.names) {
        const auto ext = lower_ext(n);
        if (ext == "ovf" && report.descriptor.empty()) report.descriptor = n;
        if (ext == "mf" && report.manifest.empty()) report.manifest = n;
    }
    if (report.descriptor.empty()) return fail_corrupt(fmt::format("{}: no .ovf descriptor in the package", what));
    if (descriptor_must_be_first && src.names.front() != report.descriptor)
        report.problems.push_back(fmt::format("the descriptor '{}' is not the first member (the OVF specification requires it)", report.descriptor));

    HSDK_TRY(auto ovf_text, src.read_text(report.descriptor, 64u << 20));
    OvfParseOptions any_system;
    any_system.first_if_several = true;  // verification covers the package, not one VM
    HSDK_TRY(auto parsed, parse_ovf(ovf_text, fmt::format("{}: descriptor '{}'", what, report.descriptor), any_system));
    std::set<std::string> present(src.names.begin(), src.names.end());
    for (const auto &f : parsed.files)
        if (!present.count(f.href)) report.problems.push_back(fmt::format("the descriptor references '{}', which is not in the package", f.href));

    if (report.manifest.empty()) {
        report.problems.push_back("the package has no manifest (.mf); nothing can be verified");
        return report;
    }
    HSDK_TRY(auto mf_text, src.read_text(report.manifest, 16u << 20));
    HSDK_TRY(auto entries, parse_manifest(mf_text, fmt::format("{}: manifest '{}'", what, report.manifest)));
    std::set<std::string> listed;
    for (const auto &e : entries) {
        listed.insert(e.file);
        if (!present.count(e.file)) {
            report.problems.push_back(fmt::format("the manifest lists '{}', which is not in the package", e.file));
            continue;
        }
        HSDK_TRY(auto where, src.locate(e.file));
        auto [file, offset, size] = where;
        auto algo = digest_from_name(e.algorithm);
        HSDK_TRY(auto hex, range_digest_hex(*file, offset, size, *algo, cancel));
        if (hex != e.digest)
            report.problems.push_back(fmt::format("{} of '{}' is {}, the manifest says {}", e.algorithm, e.file, hex, e.digest));
        else
            report.verified.push_back(e.file);
    }
    for (const auto &n : src.names) {
        const auto ext = lower_ext(n);
        if (n == report.manifest || ext == "cert") continue;
        if (!listed.count(n)) report.problems.push_back(fmt::format("'{}' is not covered by the manifest", n));
    }
    return report;
}

}  // namespace

Result<std::vector<OvaMember>> list_ova(const std::string &path) {
    HSDK_TRY(auto file, io::File::open_read(path));
    HSDK_TRY(auto entries, io::list_tar(file));
    std::vector<OvaMember> out;
    std::set<std::string> seen;
    for (const auto &e : entries) {
        if (e.type == '5') continue;
        if (!seen.insert(e.name).second) return fail_corrupt(fmt::format("OVA '{}' contains '{}' twice", path, e.name));
        out.push_back(OvaMember{e.name, e.data_offset, e.size});
    }
    if (out.empty()) return fail_corrupt(fmt::format("OVA '{}' is empty", path));
    return out;
}

Result<std::string> read_ova_member(const std::string &ova_path, const OvaMember &member, std::uint64_t max_bytes) {
    if (member.size > max_bytes)
        return fail_corrupt(fmt::format("'{}' in '{}' is {} bytes, more than the {} expected", member.name, ova_path, member.size, max_bytes));
    HSDK_TRY(auto file, io::File::open_read(ova_path));
    std::string text(static_cast<std::size_t>(member.size), '\0');
    HSDK_TRYV(file.read_exact(member.offset, std::as_writable_bytes(std::span(text.data(), text.size()))));
    return text;
}

Result<OvaVerifyReport> verify_ova(const std::string &path, const CancelToken &cancel) {
    HSDK_TRY(auto members, list_ova(path));
    HSDK_TRY(auto file, io::File::open_read(path));
    std::map<std::string, OvaMember> by_name;
    MemberSource src;
    for (const auto &m : members) {
        src.names.push_back(m.name);
        by_name[m.name] = m;
    }
    src.locate = [&](const std::string &name) -> Result<std::tuple<const io::File *, std::uint64_t, std::uint64_t>> {
        const auto &m = by_name.at(name);
        return std::make_tuple(static_cast<const io::File *>(&file), m.offset, m.size);
    };
    src.read_text = [&](const std::string &name, std::uint64_t max) { return read_ova_member(path, by_name.at(name), max); };
    return verify_members(src, true, fmt::format("OVA '{}'", path), cancel);
}

Result<OvaVerifyReport> verify_ovf_folder(const std::string &ovf_path, const CancelToken &cancel) {
    const std::string folder = io::parent_folder(ovf_path);
    const std::string ovf_name = io::base_name(ovf_path);
    std::string stem = ovf_name.substr(0, ovf_name.rfind('.'));
    MemberSource src;
    src.names.push_back(ovf_name);
    // The manifest sits beside the descriptor with the same stem; files come from the descriptor.
    OvfParseOptions any_system;
    any_system.first_if_several = true;
    HSDK_TRY(auto desc, read_ovf_file(ovf_path, any_system));
    struct stat st {};
    const std::string mf = stem + ".mf";
    if (::stat((folder + "/" + mf).c_str(), &st) == 0) src.names.push_back(mf);
    for (const auto &f : desc.files) {
        if (f.href.find('/') != std::string::npos || f.href.find("..") != std::string::npos || f.href.empty())
            return fail(Errc::permission_denied, fmt::format("descriptor '{}' references '{}' outside its folder", ovf_path, f.href));
        if (::stat((folder + "/" + f.href).c_str(), &st) == 0) src.names.push_back(f.href);
    }
    std::map<std::string, io::File> open_files;
    src.locate = [&](const std::string &name) -> Result<std::tuple<const io::File *, std::uint64_t, std::uint64_t>> {
        auto it = open_files.find(name);
        if (it == open_files.end()) {
            HSDK_TRY(auto f, io::File::open_read(folder + "/" + name));
            it = open_files.emplace(name, std::move(f)).first;
        }
        HSDK_TRY(auto size, it->second.size());
        return std::make_tuple(static_cast<const io::File *>(&it->second), std::uint64_t{0}, size);
    };
    src.read_text = [&](const std::string &name, std::uint64_t max) -> Result<std::string> {
        HSDK_TRY(auto where, src.locate(name));
        auto [file, off, size] = where;
        if (size > max) return fail_corrupt(fmt::format("'{}' is larger than {} bytes", name, max));
        std::string text(static_cast<std::size_t>(size), '\0');
        HSDK_TRYV(file->read_exact(off, std::as_writable_bytes(std::span(text.data(), text.size()))));
        return text;
    };
    return verify_members(src, false, fmt::format("OVF '{}'", ovf_path), cancel);
}

Result<void> pack_ova(const std::string &destination, const std::vector<OvaPackInput> &members, const CancelToken &cancel) {
    if (members.empty() || lower_ext(members.front().name) != "ovf")
        return fail(Errc::invalid_argument, "an OVA must start with its .ovf descriptor");
    io::AtomicOutputSet outputs;
    HSDK_TRY(auto *out, outputs.add(destination));
    io::TarWriter tar(*out);
    std::vector<std::byte> buf(4 << 20);
    for (const auto &m : members) {
        HSDK_TRY(auto in, io::File::open_read(m.path));
        HSDK_TRY(auto size, in.size());
        HSDK_TRYV(tar.begin_file(m.name, size));
        for (std::uint64_t pos = 0; pos < size;) {
            HSDK_TRYV(cancel.check());
            const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - pos));
            HSDK_TRYV(in.read_exact(pos, std::span<std::byte>(buf.data(), n)));
            HSDK_TRYV(tar.write(std::span<const std::byte>(buf.data(), n)));
            pos += n;
        }
        HSDK_TRYV(tar.end_file());
    }
    HSDK_TRYV(tar.finish());
    return outputs.commit();
}

}  // namespace hypersdk
