// raw: the disk's bytes as they are. Holes in the file (SEEK_HOLE) read as zeros.
#include "format/drivers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <unistd.h>

namespace hypersdk::format {
namespace {

class RawLayer final : public Layer {
public:
    RawLayer(io::File file, std::uint64_t size) : file_(std::move(file)), size_(size) {}

    std::uint64_t virtual_size() const noexcept override { return size_; }

    Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        if (file_.is_window()) {  // a member of a package: no hole map of its own
            append_extent(out, Extent{offset, length, ExtentKind::data});
            return success();
        }
        const std::uint64_t end = offset + length;
        std::uint64_t pos = offset;
        while (pos < end) {
            const off_t data = ::lseek(file_.fd(), static_cast<off_t>(pos), SEEK_DATA);
            if (data < 0) {
                if (errno == ENXIO) {  // no data after pos: the rest is a hole
                    append_extent(out, Extent{pos, end - pos, ExtentKind::zero});
                    break;
                }
                if (errno == EINVAL || errno == ENOTSUP) {  // no SEEK_DATA here: all data
                    append_extent(out, Extent{pos, end - pos, ExtentKind::data, 0, pos});
                    break;
                }
                return fail(io::errno_error(errno, "cannot map", file_.path()));
            }
            const std::uint64_t data_start = std::min<std::uint64_t>(static_cast<std::uint64_t>(data), end);
            if (data_start > pos) append_extent(out, Extent{pos, data_start - pos, ExtentKind::zero});
            if (data_start >= end) break;
            const off_t hole = ::lseek(file_.fd(), static_cast<off_t>(data_start), SEEK_HOLE);
            if (hole < 0) return fail(io::errno_error(errno, "cannot map", file_.path()));
            const std::uint64_t data_end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), end);
            append_extent(out, Extent{data_start, data_end - data_start, ExtentKind::data, 0, data_start});
            pos = data_end;
        }
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
    io::File file_;
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
