// raw: the disk's bytes as they are. Holes in the file (SEEK_HOLE) read as zeros.
#include "format/drivers.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk::format {
namespace {

class RawLayer final : public Layer {
public:
    RawLayer(io::Source file, std::uint64_t size) : file_(std::move(file)), size_(size) {}

    std::uint64_t virtual_size() const noexcept override { return size_; }

    // What the source knows to be zeros (holes of a sparse file) is a zero run; the rest is data.
    Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        HSDK_TRY(auto runs, file_.allocation(offset, length));
        std::uint64_t pos = offset;
        for (const auto &r : runs) {
            if (r.offset != pos) break;
            append_extent(out, r.data ? Extent{r.offset, r.length, ExtentKind::data, 0, r.offset}
                                      : Extent{r.offset, r.length, ExtentKind::zero});
            pos += r.length;
        }
        if (pos < offset + length) append_extent(out, Extent{pos, offset + length - pos, ExtentKind::data, 0, pos});
        return success();
    }

    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override { return file_.read_exact(offset, buf); }

    ImageInfo info() const override {
        ImageInfo i;
        i.format = "raw";
        i.virtual_size = size_;
        if (auto a = file_.allocated_size()) i.actual_size = a.value();
        i.files = {file_.path()};
        return i;
    }

private:
    io::Source file_;
    std::uint64_t size_;
};

class RawWriter final : public DiskWriter {
public:
    RawWriter(io::File *file, std::uint64_t size) : file_(file), size_(size) {}

    std::uint64_t granularity() const noexcept override { return 4096; }

    Result<void> commit(std::uint64_t offset, std::span<const std::byte> data, EncodedRun *) override {
        if (offset >= size_) return success();
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), size_ - offset));
        return file_->write_behind(offset, data.first(n));
    }

    Result<void> finish() override { return file_->truncate(size_); }

private:
    io::File *file_;
    std::uint64_t size_;
};

Result<std::unique_ptr<Layer>> open_raw(OpenRequest req) {
    return std::unique_ptr<Layer>(new RawLayer(std::move(req.file), req.file_size));
}

Result<std::unique_ptr<DiskWriter>> create_raw(const CreateRequest &req) {
    FormatOptions opts = req.options;
    HSDK_TRYV(reject_unknown_options(opts, "raw"));
    if (req.compress) return fail(Errc::invalid_argument, "format 'raw' does not support compression");
    HSDK_TRY(auto *file, req.outputs->add(req.path));
    HSDK_TRYV(file->truncate(req.virtual_size));  // sparse: never-written ranges stay holes
    return std::unique_ptr<DiskWriter>(new RawWriter(file, req.virtual_size));
}

}  // namespace

const Driver &raw_driver() {
    // No probe: raw is only ever used when asked for by name.
    static const Driver d{"raw", {}, nullptr, &open_raw, &create_raw};
    return d;
}

}  // namespace hypersdk::format
