// One disk converted as its stream-optimized VMDK arrives: parser -> stream sink -> format writer,
// with no intermediate file. The output stays under a temporary name until commit().
#pragma once

#include <hypersdk/cbt.hpp>
#include <hypersdk/convert.hpp>

#include "convert/stream_sink.hpp"
#include "format/layer.hpp"
#include "format/vmdk/stream_parser.hpp"
#include "io/atomic_output.hpp"

#include <memory>
#include <optional>
#include <string>

namespace hypersdk::exporter {

struct StreamedConversionOptions {
    std::string destination;
    std::string format;           // qcow2, raw, vhd, vhdx, vdi, vmdk
    FormatOptions format_options;
    bool compress = false;
    unsigned threads = 0;
    bool direct_io = true;
    // Only these ranges of the disk are written (the rest reads as zeros): a backup's changed
    // grains out of a whole-disk stream. Null: everything. Must outlive the conversion.
    const ChangedExtents *keep = nullptr;
};

class StreamedConversion {
public:
    explicit StreamedConversion(StreamedConversionOptions options);
    ~StreamedConversion();

    // Bytes of the VMDK stream, in order.
    Result<void> feed(std::span<const std::byte> bytes);
    // The server sent the stream again from its first byte: drop everything and start over.
    Result<void> restart();
    // The stream is complete: flush everything into the (still temporary) output.
    Result<void> finish();
    // Give the output its final name.
    Result<void> commit();
    [[nodiscard]] std::uint64_t virtual_size() const noexcept { return virtual_size_; }

private:
    Result<void> start_writer(const format::vmdk::SparseHeader &header);
    Result<void> write_kept(std::uint64_t offset, std::span<const std::byte> data);
    [[nodiscard]] std::string stream_name() const;
    void reset();

    StreamedConversionOptions o_;
    const format::Driver *driver_ = nullptr;
    std::unique_ptr<io::AtomicOutputSet> outputs_;
    std::unique_ptr<format::DiskWriter> writer_;
    std::unique_ptr<pipeline::StreamSink> sink_;
    std::unique_ptr<format::vmdk::StreamParser> parser_;
    std::uint64_t virtual_size_ = 0;
};

}  // namespace hypersdk::exporter
