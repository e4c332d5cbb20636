#include "convert/unit.hpp"

#include "core/zero.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>

namespace hypersdk::pipeline {

AlignedBuffer::AlignedBuffer(std::size_t size) : size_(size) {
    if (::posix_memalign(reinterpret_cast<void **>(&data_), 4096, size ? size : 1) != 0) throw std::bad_alloc();
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

Result<void> prepare_unit(const format::DiskWriter &writer, PreparedUnit &unit, std::span<const std::byte> backing) {
    const std::uint64_t granule = writer.granularity();
    auto buf = unit.buffer->span();
    for (std::size_t off = 0; off < buf.size(); off += granule) {
        const auto g = buf.subspan(off, granule);
        std::optional<RunKind> kind;
        if (!backing.empty()) {
            if (std::memcmp(g.data(), backing.data() + off, granule) != 0) kind = is_all_zero(g) ? RunKind::zero : RunKind::write;
        } else if (!is_all_zero(g)) {
            kind = RunKind::write;
        }
        if (!kind) continue;
        const std::uint64_t at = unit.begin + off;
        if (!unit.runs.empty() && unit.runs.back().kind == *kind && unit.runs.back().offset + unit.runs.back().length == at)
            unit.runs.back().length += granule;
        else
            unit.runs.push_back(Run{at, granule, *kind, {}});
    }
    if (writer.has_encoder()) {
        for (auto &run : unit.runs) {
            if (run.kind != RunKind::write) continue;
            HSDK_TRY(auto enc, writer.encode(run.offset, buf.subspan(static_cast<std::size_t>(run.offset - unit.begin),
                                                                     static_cast<std::size_t>(run.length))));
            run.encoded = std::move(enc);
        }
    }
    return success();
}

Result<void> commit_unit(format::DiskWriter &writer, PreparedUnit &unit, CommitStats &stats) {
    auto buf = unit.buffer->span();
    for (auto &run : unit.runs) {
        if (run.kind == RunKind::zero) {
            HSDK_TRYV(writer.commit_zeroes(run.offset, run.length));
            continue;
        }
        auto data = buf.subspan(static_cast<std::size_t>(run.offset - unit.begin), static_cast<std::size_t>(run.length));
        HSDK_TRYV(writer.commit(run.offset, data, writer.has_encoder() ? &run.encoded : nullptr));
        stats.bytes_written += run.length;
    }
    stats.bytes_read += unit.bytes_read;
    stats.units++;
    return success();
}

}  // namespace hypersdk::pipeline
