// FLAT / VMFS extents (raw bytes in a file, from a start sector) and ZERO extents.
#include "format/vmdk/extent_open.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace hypersdk::format::vmdk {
namespace {

class FlatExtent final : public ExtentReader {
public:
    FlatExtent(std::shared_ptr<ExtentFile> file, std::uint64_t start, std::string format)
        : file_(std::move(file)), start_(start), format_(std::move(format)) {}

    std::uint64_t capacity() const noexcept override { return file_->size > start_ ? file_->size - start_ : 0; }

    // Holes of the file read as zeros; reporting them as zero (never as holes: a flat extent covers
    // everything below it) lets conversions skip them.
    Result<void> status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        const std::uint64_t end = offset + length;
        std::uint64_t pos = offset;
        const int fd = file_->file.fd();
        while (pos < end) {
            const off_t data = ::lseek(fd, static_cast<off_t>(start_ + pos), SEEK_DATA);
            if (data < 0) {
                if (errno == ENXIO) {
                    push_run(out, pos, end - pos, ExtentKind::zero);
                    break;
                }
                if (errno == EINVAL || errno == ENOTSUP) {
                    push_run(out, pos, end - pos, ExtentKind::data, start_ + pos);
                    break;
                }
                return fail(io::errno_error(errno, "cannot map", file_->path));
            }
            const std::uint64_t data_at = std::min(end, static_cast<std::uint64_t>(data) - start_);
            if (data_at > pos) push_run(out, pos, data_at - pos, ExtentKind::zero);
            if (data_at >= end) break;
            const off_t hole = ::lseek(fd, static_cast<off_t>(start_ + data_at), SEEK_HOLE);
            if (hole < 0) return fail(io::errno_error(errno, "cannot map", file_->path));
            const std::uint64_t data_end = std::min(end, static_cast<std::uint64_t>(hole) - start_);
            push_run(out, data_at, data_end - data_at, ExtentKind::data, start_ + data_at);
            pos = data_end;
        }
        return success();
    }

    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override {
        return file_->file.read_exact(start_ + offset, buf);
    }

    void check(std::uint64_t used, CheckSink &sink) override {
        if (capacity() < used)
            sink.error(fmt::format("flat extent '{}' holds {} bytes from sector {}, the descriptor maps {}", file_->path,
                                   capacity(), start_ / sector_size, used));
    }

    ExtentSummary summary() const override {
        ExtentSummary s;
        s.format = format_;
        s.extra["start-sector"] = start_ / sector_size;
        return s;
    }

private:
    std::shared_ptr<ExtentFile> file_;
    std::uint64_t start_;
    std::string format_;
};

class ZeroExtent final : public ExtentReader {
public:
    explicit ZeroExtent(std::uint64_t bytes) : bytes_(bytes) {}
    std::uint64_t capacity() const noexcept override { return bytes_; }
    Result<void> status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        push_run(out, offset, length, ExtentKind::zero);
        return success();
    }
    Result<void> read(std::uint64_t, std::span<std::byte> buf) override {
        std::memset(buf.data(), 0, buf.size());
        return success();
    }
    void check(std::uint64_t, CheckSink &) override {}
    ExtentSummary summary() const override {
        ExtentSummary s;
        s.format = "ZERO";
        return s;
    }

private:
    std::uint64_t bytes_;
};

}  // namespace

std::unique_ptr<ExtentReader> make_flat_extent(std::shared_ptr<ExtentFile> file, std::uint64_t start_sector, std::string format) {
    return std::make_unique<FlatExtent>(std::move(file), start_sector * sector_size, std::move(format));
}

std::unique_ptr<ExtentReader> make_zero_extent(std::uint64_t bytes) { return std::make_unique<ZeroExtent>(bytes); }

}  // namespace hypersdk::format::vmdk
