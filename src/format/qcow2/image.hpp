// An opened qcow2 file: its header, files and the tables loaded at open, shared by the reader
// (qcow2_layer.cpp) and the consistency check (check.cpp). Immutable after open.
#pragma once

#include <hypersdk/check.hpp>
#include <hypersdk/disk.hpp>

#include "format/qcow2/qcow2_format.hpp"

#include <memory>
#include <string>
#include <vector>

namespace hypersdk::format::qcow2 {

struct Image {
    std::string path;
    io::Source file;
    std::uint64_t file_size = 0;
    Header header;
    // The external data file (incompatible bit 2), opened read-only; null when guest data is in `file`.
    std::unique_ptr<io::Source> data_file;
    std::string data_file_path;
    std::uint64_t data_file_size = 0;
    std::vector<std::uint64_t> l1;  // active L1 table, host byte order
    SnapshotTable snapshots;
    std::vector<BitmapInfo> bitmaps;

    // The file guest clusters are read from.
    [[nodiscard]] const io::Source &guest_file() const noexcept { return data_file ? *data_file : file; }
    [[nodiscard]] std::uint64_t guest_file_size() const noexcept { return data_file ? data_file_size : file_size; }
};

// qemu-img check semantics: rebuilds every cluster's refcount from the metadata and compares it with
// the stored refcounts; verifies OFLAG_COPIED. Read-only.
Result<CheckReport> check_refcounts(const Image &image);

}  // namespace hypersdk::format::qcow2
