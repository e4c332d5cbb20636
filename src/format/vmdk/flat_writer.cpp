// monolithicFlat writer: `<name>-flat.vmdk` holds the raw disk (sparse: never-written ranges stay
// holes), `<name>.vmdk` is a small descriptor naming it. The flat file is added to the output set
// first and the descriptor last, so the descriptor appears only once its data is in place.
#include "format/vmdk/writers.hpp"

#include "format/vmdk/sparse_header.hpp"

#include <fmt/format.h>

namespace hypersdk::format::vmdk {
namespace {

// "dir/disk.vmdk" -> "dir/disk-flat.vmdk" (the name qemu and VMware give the data file).
std::string flat_path_for(const std::string &path) {
    const std::string base = io::base_name(path);
    const std::size_t dot = base.rfind('.');
    const std::string folder = path.substr(0, path.size() - base.size());
    if (dot == std::string::npos || dot == 0) return folder + base + "-flat";
    return folder + base.substr(0, dot) + "-flat" + base.substr(dot);
}

class MonolithicFlatWriter final : public DiskWriter {
public:
    MonolithicFlatWriter(io::File *flat, io::File *descriptor_file, std::string descriptor, std::uint64_t capacity_bytes)
        : flat_(flat), descriptor_file_(descriptor_file), descriptor_(std::move(descriptor)), capacity_bytes_(capacity_bytes) {}

    std::uint64_t granularity() const noexcept override { return 4096; }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *) override {
        if (offset >= capacity_bytes_) return success();
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), capacity_bytes_ - offset));
        return flat_->write_behind(offset, data.first(n));
    }

    Result<void> finish() override {
        HSDK_TRYV(flat_->truncate(capacity_bytes_));
        return descriptor_file_->write_all(0, std::as_bytes(std::span<const char>(descriptor_)));
    }

private:
    io::File *flat_;
    io::File *descriptor_file_;
    std::string descriptor_;
    std::uint64_t capacity_bytes_;
};

}  // namespace

Result<std::unique_ptr<DiskWriter>> create_monolithic_flat(const CreateRequest &req, const WriterSettings &settings) {
    const std::string flat_path = flat_path_for(req.path);
    HSDK_TRY(auto line, extent_line("FLAT", settings.capacity_sectors, io::base_name(flat_path), true));
    std::string descriptor = render_descriptor(settings, "monolithicFlat", {line});
    HSDK_TRY(auto *flat, req.outputs->add(flat_path));
    const std::uint64_t capacity_bytes = settings.capacity_sectors * sector_size;
    HSDK_TRYV(flat->truncate(capacity_bytes));
    HSDK_TRY(auto *descriptor_file, req.outputs->add(req.path));
    return std::unique_ptr<DiskWriter>(new MonolithicFlatWriter(flat, descriptor_file, std::move(descriptor), capacity_bytes));
}

}  // namespace hypersdk::format::vmdk
