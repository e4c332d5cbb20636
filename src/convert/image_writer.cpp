// ImageWriter: the public face of the format writers. Streaming writers go through the stream
// sink (ascending pieces); raw also takes pieces in any order, written straight to the file.
#include <hypersdk/writer.hpp>

#include "convert/stream_sink.hpp"
#include "format/layer.hpp"
#include "io/atomic_output.hpp"

#include <fmt/format.h>

#include <sys/stat.h>

namespace hypersdk {
namespace {

class StreamingImageWriter final : public ImageWriter {
public:
    StreamingImageWriter(std::unique_ptr<io::AtomicOutputSet> outputs, std::unique_ptr<format::DiskWriter> writer,
                         std::uint64_t size, unsigned threads)
        : outputs_(std::move(outputs)), writer_(std::move(writer)), size_(size) {
        auto *o = outputs_.get();
        sink_ = std::make_unique<pipeline::StreamSink>(
            *writer_, size_, threads, nullptr,
            pipeline::IoFence{[o] { return o->io_ticket(); }, [o](std::uint64_t t) { return o->wait_io(t); }});
    }
    ~StreamingImageWriter() override {
        sink_.reset();  // before the writer and the files it feeds
        writer_.reset();
    }

    Result<void> write(std::uint64_t offset, std::span<const std::byte> data) override {
        if (closed_) return fail(Errc::invalid_argument, "the image writer is closed");
        return sink_->write(offset, data);
    }
    bool random_access() const noexcept override { return false; }
    std::uint64_t virtual_size() const noexcept override { return size_; }

    Result<void> close() override {
        if (closed_) return fail(Errc::invalid_argument, "the image writer is already closed");
        closed_ = true;
        HSDK_TRYV(sink_->finish());
        HSDK_TRYV(writer_->finish());
        sink_.reset();
        writer_.reset();
        return outputs_->commit();
    }

private:
    std::unique_ptr<io::AtomicOutputSet> outputs_;
    std::unique_ptr<format::DiskWriter> writer_;
    std::unique_ptr<pipeline::StreamSink> sink_;
    std::uint64_t size_;
    bool closed_ = false;
};

// raw: the file is the disk, so pieces land where they belong in any order.
class RawImageWriter final : public ImageWriter {
public:
    RawImageWriter(std::unique_ptr<io::AtomicOutputSet> outputs, io::File *file, std::uint64_t size)
        : outputs_(std::move(outputs)), file_(file), size_(size) {}

    Result<void> write(std::uint64_t offset, std::span<const std::byte> data) override {
        if (closed_) return fail(Errc::invalid_argument, "the image writer is closed");
        if (offset > size_ || data.size() > size_ - offset)
            return fail(Errc::invalid_argument,
                        fmt::format("write of {} bytes at {:#x} lies beyond the end of the disk ({} bytes)", data.size(), offset, size_));
        return file_->write_all(offset, data);
    }
    bool random_access() const noexcept override { return true; }
    std::uint64_t virtual_size() const noexcept override { return size_; }

    Result<void> close() override {
        if (closed_) return fail(Errc::invalid_argument, "the image writer is already closed");
        closed_ = true;
        HSDK_TRYV(file_->truncate(size_));
        return outputs_->commit();
    }

private:
    std::unique_ptr<io::AtomicOutputSet> outputs_;
    io::File *file_;
    std::uint64_t size_;
    bool closed_ = false;
};

}  // namespace

Result<std::unique_ptr<ImageWriter>> ImageWriter::create(const std::string &path, std::uint64_t virtual_size,
                                                         const ImageWriterOptions &options) {
    const auto *driver = format::find_driver(options.format);
    if (driver == nullptr) return fail(Errc::invalid_argument, fmt::format("unknown image format '{}'", options.format));
    if (driver->create == nullptr) return fail_unsupported(fmt::format("writing format '{}'", driver->name));
    if (virtual_size == 0) return fail(Errc::invalid_argument, "an image needs a virtual size above zero");
    if (!options.overwrite) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) return fail(Errc::conflict, fmt::format("output '{}' already exists", path));
    }
    auto outputs = std::make_unique<io::AtomicOutputSet>();
    if (driver->name == "raw") {
        if (!options.format_options.empty())
            return fail(Errc::invalid_argument, fmt::format("format 'raw' does not support option '{}'", options.format_options.front().first));
        if (options.compress) return fail(Errc::invalid_argument, "format 'raw' does not support compression");
        HSDK_TRY(auto *file, outputs->add(path));
        HSDK_TRYV(file->truncate(virtual_size));
        return std::unique_ptr<ImageWriter>(new RawImageWriter(std::move(outputs), file, virtual_size));
    }
    outputs->set_direct_writes(options.direct_io);
    format::CreateRequest req{path, virtual_size, options.format_options, options.compress, outputs.get()};
    HSDK_TRY(auto writer, driver->create(req));
    if (writer->backing())
        return fail_unsupported("an image writer cannot write an overlay on a backing file (use convert)");
    return std::unique_ptr<ImageWriter>(new StreamingImageWriter(std::move(outputs), std::move(writer), virtual_size, options.threads));
}

}  // namespace hypersdk
