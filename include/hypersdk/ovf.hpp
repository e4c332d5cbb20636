// OVF descriptors and OVA packages: parse (vCenter/ovftool, VirtualBox, OVF 1.x and 2.x), write,
// pack, verify manifests.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/vm.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk {

struct OvfFileRef {
    std::string id;    // ovf:id
    std::string href;  // ovf:href, relative to the descriptor
    std::optional<std::uint64_t> size;
    std::string compression;  // ovf:compression ("gzip") when the file is compressed
};

struct OvfDiskRef {
    std::string disk_id;
    std::string file_ref;  // empty for a blank disk
    std::uint64_t capacity_bytes = 0;
    std::optional<std::uint64_t> populated_bytes;
    std::string format_uri;  // e.g. http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized
};

struct OvfDescriptor {
    std::string ovf_version;  // "1.x" or "2.x" by envelope namespace
    std::string producer;     // "vmware", "virtualbox", "generic"
    std::vector<OvfFileRef> files;
    std::vector<OvfDiskRef> disks;
    std::vector<std::string> networks;
    std::vector<std::string> virtual_systems;  // ids of every VirtualSystem in the envelope
    VirtualMachine vm;                          // the chosen VirtualSystem; disks[].file = href
    std::vector<std::string> warnings;          // things skipped (CD-ROMs, floppies, unknown items)
};

struct OvfParseOptions {
    std::string virtual_system;  // id or name to pick when the envelope holds several; empty = the only one
    bool first_if_several = false;  // with no virtual_system named: take the first instead of failing
};

// Parses an OVF descriptor; `what` names it in errors.
Result<OvfDescriptor> parse_ovf(std::string_view xml, std::string_view what, const OvfParseOptions &options = {});
Result<OvfDescriptor> read_ovf_file(const std::string &path, const OvfParseOptions &options = {});

struct OvfWriteFile {
    std::string href;  // file name inside the package
    std::uint64_t size = 0;  // bytes of the file as stored (compressed, when it is)
    std::string compression;  // "gzip" when the file is stored gzip-compressed (ovf:compression)
};

// Writes an OVF 1.0 envelope (the form vCenter, ESXi, VirtualBox and cloud importers all read) for
// `vm`. `disk_files[i]` is the file of vm.disks[i] (streamOptimized VMDK).
std::string write_ovf(const VirtualMachine &vm, const std::vector<OvfWriteFile> &disk_files);

// ---- manifests ---------------------------------------------------------------------------

struct ManifestEntry {
    std::string algorithm;  // SHA1, SHA256, SHA512
    std::string file;
    std::string digest;     // lower-case hex
};
Result<std::vector<ManifestEntry>> parse_manifest(std::string_view text, std::string_view what);
std::string format_manifest(const std::vector<ManifestEntry> &entries);  // "SHA256(file)= hex\n" lines

// ---- OVA packages --------------------------------------------------------------------------

struct OvaMember {
    std::string name;
    std::uint64_t offset = 0;  // of the data inside the .ova
    std::uint64_t size = 0;
};

// Lists the members of an OVA (a tar archive). Hostile names (absolute, "..", NUL), links, devices
// and malformed headers are refused.
Result<std::vector<OvaMember>> list_ova(const std::string &path);

struct OvaVerifyReport {
    std::string descriptor;  // name of the .ovf member
    std::string manifest;    // name of the .mf member, empty when absent
    std::vector<std::string> verified;  // members whose digest matched
    std::vector<std::string> problems;  // empty when everything is right
};

// Checks the package: the descriptor comes first, every member is listed in the manifest with a
// matching SHA-1/SHA-256/SHA-512, every listed file exists, the descriptor parses and references
// only present files. A package without a manifest is reported as a problem.
Result<OvaVerifyReport> verify_ova(const std::string &path, const CancelToken &cancel = {});
// The same for an unpacked OVF (descriptor path; files next to it).
Result<OvaVerifyReport> verify_ovf_folder(const std::string &ovf_path, const CancelToken &cancel = {});

struct OvaPackInput {
    std::string name;  // member name
    std::string path;  // file to copy in
};

// Writes an OVA: the descriptor first, then the manifest, then the other files, as the OVF spec
// orders them; atomically (temporary name, renamed when complete).
Result<void> pack_ova(const std::string &destination, const std::vector<OvaPackInput> &members_in_order,
                      const CancelToken &cancel = {});

// The descriptor of an .ovf file, or of the .ovf member of an .ova package (read from the tar
// stream, not extracted), by extension.
Result<OvfDescriptor> read_ovf_package(const std::string &path, const OvfParseOptions &options = {});

// Reads a member's bytes (for descriptors and manifests; bounded by max_bytes).
Result<std::string> read_ova_member(const std::string &ova_path, const OvaMember &member, std::uint64_t max_bytes);

}  // namespace hypersdk
