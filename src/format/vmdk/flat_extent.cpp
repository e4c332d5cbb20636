// FLAT / VMFS extents (raw bytes in a file, from a start sector) and ZERO extents.
#include "format/vmdk/extent_open.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

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
        HSDK_TRY(auto runs, file_->file.allocation(start_ + offset, length));
        std::uint64_t pos = offset;
        for (const auto &r : runs) {
            if (r.offset != start_ + pos) break;
            if (r.data)
                push_run(out, pos, r.length, ExtentKind::data, r.offset);
            else
                push_run(out, pos, r.length, ExtentKind::zero);
            pos += r.length;
        }
        // Beyond the file's end: data, so that reading it reports the short file.
        if (pos < end) push_run(out, pos, end - pos, ExtentKind::data, start_ + pos);
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
