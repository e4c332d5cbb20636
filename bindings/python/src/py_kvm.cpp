// OVF/OVA and KVM entry points for Python; VMs travel as dicts in hsdk's VM model.
#include "py_common.hpp"

#include <hypersdk/kvm.hpp>
#include <hypersdk/ovf.hpp>

#include <pybind11/stl.h>

#include <map>

namespace hypersdk::python {
namespace {

py::object json_to_py(const nlohmann::json &j) {
    // Leaked on purpose: a static py::object would be released after the interpreter is gone.
    static auto *loads = new py::object(py::module_::import("json").attr("loads"));
    return (*loads)(j.dump());
}

nlohmann::json py_to_json(const py::handle &o) {
    static auto *dumps = new py::object(py::module_::import("json").attr("dumps"));
    return nlohmann::json::parse((*dumps)(o).cast<std::string>());
}

bool is_path(const py::handle &o) { return py::isinstance<py::str>(o) || py::hasattr(o, "__fspath__"); }

std::string path_of(const py::handle &o) {
    static auto *fspath = new py::object(py::module_::import("os").attr("fspath"));
    return (*fspath)(o).cast<std::string>();
}

// A VM given as a dict (VM model) or as a path to .ovf/.ova/.json.
VirtualMachine vm_from(const py::object &vm, const std::string &virtual_system) {
    if (is_path(vm)) {
        OvfParseOptions po;
        po.virtual_system = virtual_system;
        return unwrap(load_vm_description(path_of(vm), po));
    }
    return unwrap(vm_from_json(py_to_json(vm)));
}

std::vector<std::pair<std::string, std::string>> pairs(const py::handle &v) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto &[k, val] : v.cast<std::map<std::string, std::string>>()) out.emplace_back(k, val);
    return out;
}

// Keyword options of the KVM functions, named as in the CLI (disk_dir, disk_format, ...).
KvmOptions kvm_options(const py::kwargs &kw, std::string &virtual_system) {
    KvmOptions o;
    for (auto item : kw) {
        const auto key = item.first.cast<std::string>();
        const py::handle v = item.second;
        if (key == "name") o.name = v.cast<std::string>();
        else if (key == "disk_dir") o.disk_dir = path_of(v);
        else if (key == "disk_format") o.disk_format = v.cast<std::string>();
        else if (key == "network") o.network = v.cast<std::string>();
        else if (key == "bridge") o.bridge = v.cast<std::string>();
        else if (key == "network_map") o.network_map = pairs(v);
        else if (key == "bridge_map") o.bridge_map = pairs(v);
        else if (key == "windows_virtio") o.windows_virtio = v.cast<bool>();
        else if (key == "machine") o.machine = v.cast<std::string>();
        else if (key == "ovmf_code") o.ovmf_code = v.cast<std::string>();
        else if (key == "ovmf_vars") o.ovmf_vars = v.cast<std::string>();
        else if (key == "ovmf_code_secure") o.ovmf_code_secure = v.cast<std::string>();
        else if (key == "ovmf_vars_secure") o.ovmf_vars_secure = v.cast<std::string>();
        else if (key == "nvram_dir") o.nvram_dir = v.cast<std::string>();
        else if (key == "virtual_system") virtual_system = v.cast<std::string>();
        else throw py::type_error("unknown option '" + key + "'");
    }
    return o;
}

py::dict report_dict(const OvaVerifyReport &r) {
    py::dict d;
    d["descriptor"] = r.descriptor;
    d["manifest"] = r.manifest;
    d["verified"] = r.verified;
    d["problems"] = r.problems;
    d["ok"] = r.problems.empty();
    return d;
}

}  // namespace

void register_kvm(py::module_ &m) {
    m.def(
        "load_vm",
        [](const py::object &path, std::string virtual_system) {
            OvfParseOptions po;
            po.virtual_system = std::move(virtual_system);
            return json_to_py(to_json(unwrap(load_vm_description(path_of(path), po))));
        },
        py::arg("path"), py::arg("virtual_system") = "", "Read a VM description (.ovf, .ova, .json) into a VM-model dict.");

    m.def(
        "parse_ovf",
        [](const std::string &text, std::string virtual_system) {
            OvfParseOptions po;
            po.virtual_system = std::move(virtual_system);
            auto d = unwrap(parse_ovf(text, "OVF descriptor", po));
            py::dict out;
            out["ovf_version"] = d.ovf_version;
            out["producer"] = d.producer;
            out["vm"] = json_to_py(to_json(d.vm));
            out["networks"] = d.networks;
            out["virtual_systems"] = d.virtual_systems;
            out["warnings"] = d.warnings;
            py::list files;
            for (const auto &f : d.files) {
                py::dict fd;
                fd["id"] = f.id;
                fd["href"] = f.href;
                fd["size"] = f.size ? py::object(py::int_(*f.size)) : py::object(py::none());
                files.append(fd);
            }
            out["files"] = files;
            return out;
        },
        py::arg("text"), py::arg("virtual_system") = "");

    m.def(
        "write_ovf",
        [](const py::object &vm, const std::vector<std::pair<std::string, std::uint64_t>> &disk_files) {
            std::vector<OvfWriteFile> files;
            for (const auto &[href, size] : disk_files) files.push_back({href, size});
            return write_ovf(vm_from(vm, ""), files);
        },
        py::arg("vm"), py::arg("disk_files") = std::vector<std::pair<std::string, std::uint64_t>>{},
        "OVF 1.0 descriptor for a VM; disk_files lists (href, size) per disk.");

    m.def(
        "kvm_domain_xml",
        [](const py::object &vm, const py::kwargs &kw) {
            std::string vs;
            auto o = kvm_options(kw, vs);
            return unwrap(libvirt_domain_xml(vm_from(vm, vs), o));
        },
        py::arg("vm"), "libvirt domain XML for a VM (dict or .ovf/.ova/.json path); options as in `hsdk kvm domain`.");

    m.def(
        "kvm_manifest",
        [](const py::object &vm, const py::kwargs &kw) {
            std::string vs;
            auto o = kvm_options(kw, vs);
            auto machine = vm_from(vm, vs);
            Result<nlohmann::json> r = fail(Errc::internal, "not run");
            {
                py::gil_scoped_release nogil;
                r = hyper2kvm_manifest(machine, o);
            }
            return json_to_py(unwrap(std::move(r)));
        },
        py::arg("vm"), "hyper2kvm artifact manifest (dict); measures the disks in disk_dir.");

    m.def(
        "write_json",
        [](const py::object &path, const py::object &document) { unwrap(write_json_file(path_of(path), py_to_json(document))); },
        py::arg("path"), py::arg("document"), "Write JSON atomically (temporary name, then rename).");

    m.def(
        "verify_ova",
        [](const py::object &path) {
            const std::string p = path_of(path);
            const bool is_ovf = p.size() > 4 && p.compare(p.size() - 4, 4, ".ovf") == 0;
            Result<OvaVerifyReport> r = fail(Errc::internal, "not run");
            {
                py::gil_scoped_release nogil;
                r = is_ovf ? verify_ovf_folder(p) : verify_ova(p);
            }
            return report_dict(unwrap(std::move(r)));
        },
        py::arg("path"), "Check an OVA (or .ovf with its files) against its manifest; returns a report dict with 'ok'.");

    m.def(
        "list_ova",
        [](const py::object &path) {
            py::list out;
            for (const auto &mbr : unwrap(list_ova(path_of(path)))) {
                py::dict d;
                d["name"] = mbr.name;
                d["offset"] = mbr.offset;
                d["size"] = mbr.size;
                out.append(d);
            }
            return out;
        },
        py::arg("path"));
}

}  // namespace hypersdk::python
