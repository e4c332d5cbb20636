#include "export/streamed_conversion.hpp"

#include <fmt/format.h>

namespace hypersdk::exporter {

StreamedConversion::StreamedConversion(StreamedConversionOptions options) : o_(std::move(options)) { reset(); }

StreamedConversion::~StreamedConversion() {
    // Tear down in dependency order; an uncommitted output set removes its temporaries.
    parser_.reset();
    sink_.reset();
    writer_.reset();
    outputs_.reset();
}

void StreamedConversion::reset() {
    parser_.reset();
    sink_.reset();
    writer_.reset();
    outputs_ = std::make_unique<io::AtomicOutputSet>();
    outputs_->set_direct_writes(o_.direct_io);
    virtual_size_ = 0;
    format::vmdk::StreamParser::Handlers handlers{
        [this](const format::vmdk::SparseHeader &h) { return start_writer(h); },
        [this](std::uint64_t offset, std::span<const std::byte> data) { return write_kept(offset, data); }, {}};
    // Grains are inflated by the sink's workers, not by the thread receiving the stream - unless
    // only some ranges are kept (a grain cannot be cut while compressed).
    if (o_.keep == nullptr)
        handlers.on_deflated_grain = [this](std::uint64_t offset, std::size_t length, std::span<const std::byte> deflated,
                                            std::uint64_t stream_offset) {
            return sink_->write_deflated(offset, length, deflated, stream_offset);
        };
    parser_ = std::make_unique<format::vmdk::StreamParser>(std::move(handlers), stream_name());
}

Result<void> StreamedConversion::start_writer(const format::vmdk::SparseHeader &header) {
    driver_ = format::find_driver(o_.format);
    if (driver_ == nullptr || driver_->create == nullptr)
        return fail(Errc::invalid_argument, fmt::format("cannot write format '{}'", o_.format));
    virtual_size_ = header.capacity * format::vmdk::sector_size;
    format::CreateRequest req{o_.destination, virtual_size_, o_.format_options, o_.compress, outputs_.get()};
    HSDK_TRY(auto writer, driver_->create(req));
    if (writer->backing())
        return fail(Errc::invalid_argument, "a streamed export cannot write an overlay on a backing file");
    writer_ = std::move(writer);
    auto *outputs = outputs_.get();
    sink_ = std::make_unique<pipeline::StreamSink>(
        *writer_, virtual_size_, o_.threads, nullptr,
        pipeline::IoFence{[outputs] { return outputs->io_ticket(); }, [outputs](std::uint64_t t) { return outputs->wait_io(t); }});
    sink_->set_stream_name(stream_name());
    return success();
}

Result<void> StreamedConversion::write_kept(std::uint64_t offset, std::span<const std::byte> data) {
    if (o_.keep == nullptr) return sink_->write(offset, data);
    const ChangedExtents kept = o_.keep->clipped(offset, offset + data.size());
    for (const auto &r : kept.runs()) HSDK_TRYV(sink_->write(r.offset, data.subspan(r.offset - offset, r.length)));
    return success();
}

std::string StreamedConversion::stream_name() const { return fmt::format("stream for '{}'", o_.destination); }

Result<void> StreamedConversion::feed(std::span<const std::byte> bytes) { return parser_->feed(bytes); }

Result<void> StreamedConversion::restart() {
    reset();
    return success();
}

Result<void> StreamedConversion::finish() {
    HSDK_TRYV(parser_->finish());
    if (!sink_) return fail_corrupt(fmt::format("stream for '{}' had no header", o_.destination));
    HSDK_TRYV(sink_->finish());
    return writer_->finish();
}

Result<void> StreamedConversion::commit() {
    sink_.reset();
    writer_.reset();
    return outputs_->commit();
}

}  // namespace hypersdk::exporter
