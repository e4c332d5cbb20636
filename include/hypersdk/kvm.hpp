// The last step of a move to KVM: a libvirt domain and the hyper2kvm artifact manifest.
#pragma once

#include <hypersdk/artifact.hpp>
#include <hypersdk/cancel.hpp>
#include <hypersdk/convert.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/ovf.hpp>
#include <hypersdk/vm.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace hypersdk {

struct KvmOptions {
    std::string name;                     // domain name; default: the VM's name
    std::string disk_dir = ".";           // where the converted disks live
    std::string disk_format = "qcow2";    // their format: raw, qcow2, vmdk, vhd (vpc), vhdx or vdi
    std::string network;                  // libvirt network for every NIC (default "default")
    std::string bridge;                   // or a host bridge for every NIC
    // Per source network: libvirt network or bridge (take precedence over network/bridge).
    std::vector<std::pair<std::string, std::string>> network_map;
    std::vector<std::pair<std::string, std::string>> bridge_map;
    // A map entry whose source network no NIC of the VM is on: an error when strict, else a warning.
    bool strict = false;
    bool windows_virtio = false;          // the Windows guest already has virtio drivers installed
    std::string machine;                  // force "q35" or "pc"
    // Firmware files on the KVM host (Debian/Ubuntu ovmf package paths by default).
    std::string ovmf_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    std::string ovmf_vars = "/usr/share/OVMF/OVMF_VARS_4M.fd";
    std::string ovmf_code_secure = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
    std::string ovmf_vars_secure = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
    std::string nvram_dir = "/var/lib/libvirt/qemu/nvram";
};

// How the guest will be presented to KVM, decided from its OS and firmware.
struct GuestProfile {
    std::string family;      // windows, linux, other
    bool legacy = false;     // an OS too old for q35/virtio (Windows XP/2003, Linux 2.4, RHEL 3/4, ...)
    bool virtio = false;     // disks and NICs as virtio
    std::string machine;     // q35 or pc
    std::string disk_bus;    // virtio, sata, ide
    std::string nic_model;   // virtio, e1000e, e1000, rtl8139
    std::string video;       // virtio, vga
};

GuestProfile guest_profile(const VirtualMachine &vm, const KvmOptions &options);

// The local file name a converted disk gets: its source file's stem + "." + format (or disk id).
std::string converted_disk_name(const VmDisk &disk, std::size_t index, const std::string &format);

// Absolute, normalised path of `name` inside `folder` (libvirt accepts only absolute paths).
std::string disk_path(const std::string &folder, const std::string &name);

// The type libvirt's QEMU driver opens a disk of this format as (<driver type='...'>): raw, qcow2,
// vmdk, vpc (for vhd), vhdx, vdi; invalid_argument for anything else.
Result<std::string> libvirt_disk_type(const std::string &disk_format);

// Checks the options against the VM: a known disk format, and map entries that match a NIC (a
// warning is logged for one that matches none, or it fails when options.strict).
Result<void> check_kvm_options(const VirtualMachine &vm, const KvmOptions &options);

// A libvirt domain (<domain type='kvm'>) that defines and starts, keeping the VM's shape.
Result<std::string> libvirt_domain_xml(const VirtualMachine &vm, const KvmOptions &options);

// Reads a VM description from an OVF descriptor, an OVA (descriptor read from the tar stream) or a
// VM JSON file (hsdk's VM model), by extension (.ovf, .ova, .json).
Result<VirtualMachine> load_vm_description(const std::string &path, const OvfParseOptions &options = {});

// hyper2kvm's artifact manifest (docs/hyper2kvm-manifest.md). Disk files are looked up in
// options.disk_dir; their size and SHA-256 are measured (a missing disk file is an error).
Result<nlohmann::json> hyper2kvm_manifest(const VirtualMachine &vm, const KvmOptions &options, const CancelToken &cancel = {});
// Writes it atomically (temporary name, renamed when complete).
Result<void> write_json_file(const std::string &path, const nlohmann::json &document);

struct KvmImportOptions {
    KvmOptions kvm;              // kvm.disk_dir is the output folder (created if missing)
    FormatOptions format_options;  // -o options for the converted disks
    bool compress = false;
    unsigned threads = 0;
    bool verify = true;          // check an OVA's manifest before importing
    bool overwrite = false;      // replace existing output files
    OvfParseOptions ovf;
    // Disk files stored encrypted (an export with encryption: the method from each file's header).
    // Files stored gzip-compressed (ovf:compression="gzip") are read as what they hold.
    DecryptionKeys keys;
    ProgressCallback progress;
    CancelToken cancel;
};

struct KvmImportResult {
    VirtualMachine vm;
    std::vector<std::string> disks;  // converted disk files, in VM disk order
    std::string domain_xml_path;     // <out>/<name>.xml
    std::string manifest_path;       // <out>/<name>.hyper2kvm.json
};

// The whole last step from an OVF/OVA/VM JSON: converts every disk into options.kvm.disk_dir in
// options.kvm.disk_format (straight out of the OVA, no extraction), then writes the libvirt domain
// XML and the hyper2kvm manifest next to them. Each output appears only when complete.
Result<KvmImportResult> import_to_kvm(const std::string &from, const KvmImportOptions &options);

}  // namespace hypersdk
