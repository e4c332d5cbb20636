// Loading a VM description from .ovf, .ova or .json.
#include <hypersdk/kvm.hpp>

#include "io/file.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk {
namespace {

std::string extension(const std::string &path) {
    const auto slash = path.find_last_of('/');
    const auto dot = path.rfind('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
    std::string e = path.substr(dot + 1);
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return e;
}

Result<std::string> read_small_file(const std::string &path, std::uint64_t max) {
    HSDK_TRY(auto f, io::File::open_read(path));
    HSDK_TRY(auto size, f.size());
    if (size > max) return fail(Errc::invalid_argument, fmt::format("'{}' is larger than {} bytes", path, max));
    std::string text(static_cast<std::size_t>(size), '\0');
    HSDK_TRYV(f.read_exact(0, std::as_writable_bytes(std::span(text.data(), text.size()))));
    return text;
}

}  // namespace

Result<OvfDescriptor> read_ovf_package(const std::string &path, const OvfParseOptions &options) {
    const std::string ext = extension(path);
    if (ext == "ovf") return read_ovf_file(path, options);
    if (ext != "ova") return fail(Errc::invalid_argument, fmt::format("'{}': expected a .ovf or .ova file", path));
    HSDK_TRY(auto members, list_ova(path));
    auto it = std::find_if(members.begin(), members.end(), [](const OvaMember &m) {
        return m.name.size() > 4 && m.name.compare(m.name.size() - 4, 4, ".ovf") == 0;
    });
    if (it == members.end()) return fail_corrupt(fmt::format("OVA '{}' holds no .ovf descriptor", path));
    HSDK_TRY(auto text, read_ova_member(path, *it, 64u << 20));
    return parse_ovf(text, fmt::format("OVF descriptor '{}' in '{}'", it->name, path), options);
}

Result<VirtualMachine> load_vm_description(const std::string &path, const OvfParseOptions &options) {
    const std::string ext = extension(path);
    if (ext == "ovf" || ext == "ova") {
        HSDK_TRY(auto d, read_ovf_package(path, options));
        return d.vm;
    }
    if (ext == "json") {
        HSDK_TRY(auto text, read_small_file(path, 16u << 20));
        auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) return fail(Errc::invalid_argument, fmt::format("'{}' is not valid JSON", path));
        auto vm = vm_from_json(j);
        if (!vm) return fail(vm.error().with_context(fmt::format("'{}'", path)));
        return vm;
    }
    return fail(Errc::invalid_argument, fmt::format("'{}': expected a .ovf, .ova or .json VM description", path));
}

}  // namespace hypersdk
