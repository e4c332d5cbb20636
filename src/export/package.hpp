// What every export shares once its disks are files: the OVF descriptor and manifest beside them,
// or an OVA packed from them; and the names of the files.
#pragma once

#include <hypersdk/cancel.hpp>
#include <hypersdk/error.hpp>
#include <hypersdk/vm.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace hypersdk::exporter {

struct PackagedDisk {
    std::string name;  // file name inside the package / folder
    std::string path;  // where its bytes are now
    std::uint64_t size = 0;
    std::string sha256;  // hex
    std::string compression;  // "gzip" when the file is stored gzip-compressed (ovf:compression)
};

// format "ovf": writes <stem>.mf then <stem>.ovf into output_dir (the disks must be there already
// under their names; the descriptor appears last, so a folder with an .ovf is complete).
// format "ova": packs <stem>.ova from the descriptor, the manifest and the disks at their paths.
// Returns the files written. `vm` describes the disks in order (disks[i] is disks_in_order[i]).
// `ova_destination`, when given, is where the OVA is packed instead of <output_dir>/<stem>.ova.
Result<std::vector<std::string>> write_package(const VirtualMachine &vm, const std::vector<PackagedDisk> &disks_in_order,
                                               const std::string &format, const std::string &output_dir,
                                               const std::string &stem, const CancelToken &cancel,
                                               const std::string &ova_destination = {});

// A VM name as a file name: no path separators, no control characters, no leading dot.
std::string file_stem(const std::string &name);

}  // namespace hypersdk::exporter
