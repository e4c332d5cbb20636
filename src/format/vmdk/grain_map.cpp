#include "format/vmdk/grain_map.hpp"

#include "core/codec.hpp"
#include "core/endian.hpp"
#include "format/vmdk/sparse_header.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace hypersdk::format::vmdk {
namespace {

// Grain tables kept in memory per extent; past this the cache starts over (sequential conversions
// touch each table about twice, so a simple reset costs little).
constexpr std::size_t table_cache_budget = 32u << 20;
// Longest read-ahead for compressed grains.
constexpr std::uint64_t max_window = 8u << 20;

std::uint64_t round_up_sector(std::uint64_t v) { return (v + sector_size - 1) / sector_size * sector_size; }

}  // namespace

// Read-ahead window for compressed grains. Reused by each thread across reads, and never
// zero-filled: a conversion reads hundreds of these windows, and fresh zeroed buffers cost page
// faults and memsets for bytes that are overwritten at once.
struct GrainMapExtent::Window {
    std::uint64_t start = 0;
    std::size_t len = 0;
    std::size_t cap = 0;
    std::unique_ptr<std::byte[]> buf;
    std::span<std::byte> reserve(std::size_t n) {
        if (n > cap) {
            buf.reset(new std::byte[n]);
            cap = n;
        }
        len = n;
        return {buf.get(), n};
    }
    [[nodiscard]] std::span<const std::byte> bytes() const { return {buf.get(), len}; }
};

Result<std::unique_ptr<ExtentReader>> GrainMapExtent::create(std::shared_ptr<ExtentFile> file, GrainMapConfig config) {
    std::vector<std::pair<std::uint64_t, std::size_t>> tables;
    for (std::size_t i = 0; i < config.directory.size(); ++i)
        if (config.directory[i] != table_none && config.directory[i] != table_zero) tables.emplace_back(config.directory[i], i);
    std::sort(tables.begin(), tables.end());
    const std::uint64_t table_bytes = std::uint64_t{config.gtes_per_gt} * config.entry_bytes;
    for (std::size_t i = 1; i < tables.size(); ++i)
        if (tables[i].first - tables[i - 1].first < table_bytes)
            return fail_corrupt(fmt::format("{} '{}': grain directory entries {} and {} point at overlapping grain tables (offsets {:#x} "
                                            "and {:#x})",
                                            config.what, file->path, tables[i - 1].second, tables[i].second, tables[i - 1].first,
                                            tables[i].first));
    return std::unique_ptr<ExtentReader>(new GrainMapExtent(std::move(file), std::move(config)));
}

GrainMapExtent::GrainMapExtent(std::shared_ptr<ExtentFile> file, GrainMapConfig config)
    : file_(std::move(file)), cfg_(std::move(config)) {
    std::sort(cfg_.scanned_grains.begin(), cfg_.scanned_grains.end());
}

std::string GrainMapExtent::where() const { return fmt::format("{} '{}'", cfg_.what, file_->path); }

std::uint64_t GrainMapExtent::grain_bytes(std::uint64_t g) const noexcept {
    const std::uint64_t start = g * cfg_.grain;
    return start >= cfg_.capacity ? 0 : std::min(cfg_.grain, cfg_.capacity - start);
}

Result<std::shared_ptr<const GrainMapExtent::Table>> GrainMapExtent::load_table(std::uint64_t index) const {
    const std::uint64_t at = cfg_.directory[index];
    const std::uint64_t bytes = std::uint64_t{cfg_.gtes_per_gt} * cfg_.entry_bytes;
    if (at > file_->size || bytes > file_->size - at)
        return fail_corrupt(fmt::format("{}: grain table {} at offset {:#x} lies beyond the end of the file ({} bytes)", where(),
                                        index, at, file_->size));
    std::vector<std::byte> raw(static_cast<std::size_t>(bytes));
    HSDK_TRYV(file_->file.read_exact(at, raw));
    auto table = std::make_shared<Table>(cfg_.gtes_per_gt, grain_hole);
    for (std::uint32_t i = 0; i < cfg_.gtes_per_gt; ++i) {
        const std::uint64_t g = index * cfg_.gtes_per_gt + i;
        if (g * cfg_.grain >= cfg_.capacity) break;  // entries past the capacity are never used
        const std::uint64_t value = cfg_.entry_bytes == 4 ? le32(raw.data(), std::size_t{i} * 4) : le64(raw.data(), std::size_t{i} * 8);
        auto decoded = cfg_.decode(value);
        if (!decoded)
            return fail_corrupt(fmt::format("{}: grain table {} entry {}: {}", where(), index, i, decoded.error().message));
        const std::uint64_t v = decoded.value();
        if (v != grain_hole && v != grain_zero) {
            const std::uint64_t need = cfg_.compressed ? (cfg_.markers ? grain_marker_head : 1) : grain_bytes(g);
            if (v > file_->size || need > file_->size - v)
                return fail_corrupt(fmt::format("{}: grain {} at offset {:#x} lies beyond the end of the file ({} bytes)", where(),
                                                g, v, file_->size));
        }
        (*table)[i] = v;
    }
    return std::shared_ptr<const Table>(std::move(table));
}

Result<std::shared_ptr<const GrainMapExtent::Table>> GrainMapExtent::table(std::uint64_t index) {
    {
        std::lock_guard lock(mutex_);
        if (auto it = cache_.find(index); it != cache_.end()) return it->second;
    }
    HSDK_TRY(auto loaded, load_table(index));
    std::lock_guard lock(mutex_);
    const std::size_t bytes = loaded->size() * sizeof(std::uint64_t);
    if (cached_bytes_ + bytes > table_cache_budget) {
        cache_.clear();
        cached_bytes_ = 0;
    }
    if (cache_.emplace(index, loaded).second) cached_bytes_ += bytes;
    return loaded;
}

Result<std::uint64_t> GrainMapExtent::grain_value(std::uint64_t g, std::shared_ptr<const Table> &cached, std::uint64_t &cached_index) {
    if (cfg_.scanned) {
        auto it = std::lower_bound(cfg_.scanned_grains.begin(), cfg_.scanned_grains.end(), std::pair<std::uint64_t, std::uint64_t>{g, 0});
        return it != cfg_.scanned_grains.end() && it->first == g ? it->second : grain_hole;
    }
    const std::uint64_t ti = g / cfg_.gtes_per_gt;
    if (ti >= cfg_.directory.size())
        return fail_corrupt(fmt::format("{}: grain {} lies beyond the grain directory ({} entries)", where(), g, cfg_.directory.size()));
    const std::uint64_t d = cfg_.directory[ti];
    if (d == table_none) return grain_hole;
    if (d == table_zero) return grain_zero;
    if (!cached || cached_index != ti) {
        HSDK_TRY(auto t, table(ti));
        cached = std::move(t);
        cached_index = ti;
    }
    return (*cached)[g % cfg_.gtes_per_gt];
}

Result<void> GrainMapExtent::status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) {
    const std::uint64_t end = offset + length;
    if (end > cfg_.capacity) return fail(Errc::internal, fmt::format("{}: status beyond capacity", where()));
    std::shared_ptr<const Table> cached;
    std::uint64_t cached_index = UINT64_MAX;
    const std::uint64_t table_span = cfg_.grain * cfg_.gtes_per_gt;
    std::uint64_t pos = offset;
    while (pos < end) {
        const std::uint64_t g = pos / cfg_.grain;
        if (cfg_.scanned) {
            // Jump over the holes between the grains the stream holds.
            auto it = std::lower_bound(cfg_.scanned_grains.begin(), cfg_.scanned_grains.end(), std::pair<std::uint64_t, std::uint64_t>{g, 0});
            const std::uint64_t next = it == cfg_.scanned_grains.end() ? UINT64_MAX : it->first;
            if (next != g) {
                const std::uint64_t stop = next == UINT64_MAX || next >= end / cfg_.grain + 1 ? end : std::min(end, next * cfg_.grain);
                push_run(out, pos, stop - pos, ExtentKind::hole);
                pos = stop;
                continue;
            }
        } else {
            // Whole tables that are absent or zero need no per-grain walk.
            const std::uint64_t ti = g / cfg_.gtes_per_gt;
            if (ti < cfg_.directory.size() && (cfg_.directory[ti] == table_none || cfg_.directory[ti] == table_zero)) {
                const std::uint64_t stop = std::min(end, (ti + 1) * table_span);
                push_run(out, pos, stop - pos, cfg_.directory[ti] == table_none ? ExtentKind::hole : ExtentKind::zero);
                pos = stop;
                continue;
            }
        }
        const std::uint64_t stop = std::min(end, (g + 1) * cfg_.grain);
        HSDK_TRY(auto v, grain_value(g, cached, cached_index));
        if (v == grain_hole) {
            push_run(out, pos, stop - pos, ExtentKind::hole);
        } else if (v == grain_zero) {
            push_run(out, pos, stop - pos, ExtentKind::zero);
        } else {
            push_run(out, pos, stop - pos, ExtentKind::data, cfg_.compressed ? no_host_offset : v + (pos - g * cfg_.grain));
        }
        pos = stop;
    }
    return success();
}

Result<void> GrainMapExtent::read_compressed(std::uint64_t g, std::uint64_t at, std::uint64_t in_grain, std::span<std::byte> out,
                                             std::uint64_t remaining, Window &window, std::vector<std::byte> &scratch) {
    const std::uint64_t need = grain_bytes(g);
    // Make [at, at + len) available in the window, reading ahead `ahead` bytes when refilling.
    auto ensure = [&](std::uint64_t len, std::uint64_t ahead) -> Result<void> {
        if (window.len != 0 && at >= window.start && at - window.start + len <= window.len) return success();
        if (at > file_->size || len > file_->size - at)
            return fail_corrupt(fmt::format("{}: compressed grain {} at offset {:#x} runs past the end of the file", where(), g, at));
        const std::uint64_t n = std::min(file_->size - at, std::max(len, ahead));
        auto dst = window.reserve(static_cast<std::size_t>(n));
        window.start = at;
        auto r = file_->file.read_exact(at, dst);
        if (!r) window.len = 0;
        return r;
    };
    // Streams store grains in LBA order, so the rest of the request usually follows this grain: read
    // about that much (compressed data rarely exceeds its plain size by more than a few percent).
    const std::uint64_t ahead = std::min(max_window, 2 * cfg_.grain + sector_size + remaining + remaining / 16);
    std::span<const std::byte> data;
    if (cfg_.markers) {
        HSDK_TRYV(ensure(grain_marker_head, ahead));
        const Marker m = parse_marker(window.bytes().subspan(static_cast<std::size_t>(at - window.start)));
        if (m.size == 0)
            return fail_corrupt(fmt::format("{}: grain {} points at offset {:#x}, which holds a metadata marker, not a grain", where(),
                                            g, at));
        if (m.size > 2 * cfg_.grain)
            return fail_corrupt(fmt::format("{}: compressed grain at offset {:#x} claims {} bytes, more than twice the grain size",
                                            where(), at, m.size));
        const std::uint64_t expected_lba = g * cfg_.grain / sector_size;
        if (m.value != expected_lba)
            return fail_corrupt(fmt::format("{}: grain marker at offset {:#x} is for sector {}, the grain table expects sector {}",
                                            where(), at, m.value, expected_lba));
        HSDK_TRYV(ensure(grain_marker_head + m.size, ahead));
        data = window.bytes().subspan(static_cast<std::size_t>(at - window.start) + grain_marker_head, m.size);
    } else {
        // Without markers the stream's length is unknown: give the decoder up to two grains.
        const std::uint64_t len = std::min(file_->size - at, 2 * cfg_.grain);
        HSDK_TRYV(ensure(len, ahead));
        data = window.bytes().subspan(static_cast<std::size_t>(at - window.start), static_cast<std::size_t>(len));
    }
    const std::string what = fmt::format("{}: grain {} at offset {:#x}", where(), g, at);
    if (in_grain == 0 && out.size() == need) return core::codec::decompress_exact(core::codec::Kind::zlib, data, out, what);
    scratch.resize(static_cast<std::size_t>(need));
    HSDK_TRYV(core::codec::decompress_exact(core::codec::Kind::zlib, data, scratch, what));
    std::memcpy(out.data(), scratch.data() + in_grain, out.size());
    return success();
}

Result<void> GrainMapExtent::read(std::uint64_t offset, std::span<std::byte> buf) {
    const std::uint64_t end = offset + buf.size();
    if (end > cfg_.capacity) return fail(Errc::internal, fmt::format("{}: read beyond capacity", where()));
    std::shared_ptr<const Table> cached;
    std::uint64_t cached_index = UINT64_MAX;
    // Neighbouring plain grains that sit back to back in the file become one read.
    std::uint64_t pending_at = 0;
    std::byte *pending_dst = nullptr;
    std::size_t pending_len = 0;
    auto flush = [&]() -> Result<void> {
        if (pending_len == 0) return success();
        auto r = file_->file.read_exact(pending_at, std::span<std::byte>(pending_dst, pending_len));
        pending_len = 0;
        return r;
    };
    thread_local Window window;
    window.len = 0;  // a window left by another extent or request is not ours
    thread_local std::vector<std::byte> scratch;
    std::uint64_t pos = offset;
    while (pos < end) {
        const std::uint64_t g = pos / cfg_.grain;
        const std::uint64_t in_grain = pos - g * cfg_.grain;
        const auto n = static_cast<std::size_t>(std::min(cfg_.grain - in_grain, end - pos));
        std::byte *dst = buf.data() + (pos - offset);
        HSDK_TRY(auto v, grain_value(g, cached, cached_index));
        if (v == grain_hole || v == grain_zero) {
            std::memset(dst, 0, n);
        } else if (!cfg_.compressed) {
            const std::uint64_t at = v + in_grain;
            if (pending_len != 0 && pending_at + pending_len == at && pending_dst + pending_len == dst) {
                pending_len += n;
            } else {
                HSDK_TRYV(flush());
                pending_at = at;
                pending_dst = dst;
                pending_len = n;
            }
        } else {
            HSDK_TRYV(read_compressed(g, v, in_grain, std::span<std::byte>(dst, n), end - pos - n, window, scratch));
        }
        pos += n;
    }
    return flush();
}

void GrainMapExtent::check(std::uint64_t used, CheckSink &sink) {
    auto &report = sink.report();
    for (const auto &f : cfg_.findings) sink.error(fmt::format("{}: {}", where(), f));
    const std::uint64_t covered = std::min(used, cfg_.capacity);
    const std::uint64_t grains = (covered + cfg_.grain - 1) / cfg_.grain;
    std::vector<FileRange> ranges = cfg_.metadata;
    std::uint64_t allocated = 0;

    auto note_grain = [&](std::uint64_t g, std::uint64_t v) {
        if (v == grain_hole || v == grain_zero) return;
        ++allocated;
        const std::string label = fmt::format("grain {}", g);
        if (!cfg_.compressed) {
            const std::uint64_t len = grain_bytes(g);
            if (v > file_->size || len > file_->size - v) {
                sink.error(fmt::format("{}: grain {} at offset {:#x} lies beyond the end of the file", where(), g, v));
                return;
            }
            ranges.push_back({v, round_up_sector(len), label, true});
            return;
        }
        if (!cfg_.markers) {
            if (v >= file_->size) {
                sink.error(fmt::format("{}: compressed grain {} at offset {:#x} lies beyond the end of the file", where(), g, v));
                return;
            }
            ranges.push_back({v, 1, label, true});
            return;
        }
        std::array<std::byte, 16> head{};
        if (v > file_->size || grain_marker_head > file_->size - v) {
            sink.error(fmt::format("{}: grain marker {} at offset {:#x} lies beyond the end of the file", where(), g, v));
            return;
        }
        if (!file_->file.read_exact(v, std::span<std::byte>(head).first(grain_marker_head))) {
            sink.error(fmt::format("{}: cannot read the grain marker of grain {} at offset {:#x}", where(), g, v));
            return;
        }
        const Marker m = parse_marker(head);
        if (m.size == 0) {
            sink.error(fmt::format("{}: grain {} points at a metadata marker (offset {:#x})", where(), g, v));
            return;
        }
        if (m.value != g * cfg_.grain / sector_size)
            sink.error(fmt::format("{}: grain marker at offset {:#x} is for sector {}, the grain table expects sector {}", where(), v,
                                   m.value, g * cfg_.grain / sector_size));
        if (m.size > 2 * cfg_.grain)
            sink.error(fmt::format("{}: compressed grain at offset {:#x} claims {} bytes", where(), v, m.size));
        if (grain_marker_head + m.size > file_->size - v) {
            sink.error(fmt::format("{}: compressed grain at offset {:#x} runs past the end of the file", where(), v));
            return;
        }
        ranges.push_back({v, round_up_sector(grain_marker_head + m.size), label, true});
    };

    if (cfg_.scanned) {
        for (const auto &[g, v] : cfg_.scanned_grains)
            if (g < grains) note_grain(g, v);
    } else {
        const std::uint64_t tables = (grains + cfg_.gtes_per_gt - 1) / cfg_.gtes_per_gt;
        const std::uint64_t table_bytes = std::uint64_t{cfg_.gtes_per_gt} * cfg_.entry_bytes;
        std::vector<std::byte> raw(static_cast<std::size_t>(table_bytes));
        for (std::uint64_t t = 0; t < tables; ++t) {
            if (t >= cfg_.directory.size()) {
                sink.error(fmt::format("{}: grain directory has {} entries, the capacity needs {}", where(), cfg_.directory.size(), tables));
                break;
            }
            const std::uint64_t d = cfg_.directory[t];
            if (d == table_none || d == table_zero) continue;
            if (d > file_->size || table_bytes > file_->size - d) {
                sink.error(fmt::format("{}: grain table {} at offset {:#x} lies beyond the end of the file", where(), t, d));
                continue;
            }
            ranges.push_back({d, round_up_sector(table_bytes), fmt::format("grain table {}", t)});
            if (!file_->file.read_exact(d, raw)) {
                sink.error(fmt::format("{}: cannot read grain table {} at offset {:#x}", where(), t, d));
                continue;
            }
            for (std::uint32_t i = 0; i < cfg_.gtes_per_gt; ++i) {
                const std::uint64_t g = t * cfg_.gtes_per_gt + i;
                if (g >= grains) break;
                const std::uint64_t value = cfg_.entry_bytes == 4 ? le32(raw.data(), std::size_t{i} * 4) : le64(raw.data(), std::size_t{i} * 8);
                auto decoded = cfg_.decode(value);
                if (!decoded) {
                    sink.error(fmt::format("{}: grain table {} entry {}: {}", where(), t, i, decoded.error().message));
                    continue;
                }
                note_grain(g, decoded.value());
            }
        }
    }
    report.total_clusters += grains;
    report.allocated_clusters += allocated;

    // Overlaps: two table entries sharing a grain, grains over tables or headers, tables sharing space.
    std::sort(ranges.begin(), ranges.end(), [](const FileRange &a, const FileRange &b) {
        return a.offset != b.offset ? a.offset < b.offset : a.length < b.length;
    });
    const FileRange *furthest = nullptr;
    for (const auto &r : ranges) {
        if (r.length == 0) continue;
        if (furthest != nullptr && r.offset < furthest->offset + furthest->length) {
            if (r.offset == furthest->offset && r.grain && furthest->grain)
                sink.error(fmt::format("{}: {} and {} point at the same data at offset {:#x}", where(), furthest->what, r.what, r.offset));
            else
                sink.error(fmt::format("{}: {} and {} overlap at offset {:#x}", where(), furthest->what, r.what, r.offset));
        }
        if (furthest == nullptr || r.offset + r.length > furthest->offset + furthest->length) furthest = &r;
    }
}

ExtentSummary GrainMapExtent::summary() const {
    ExtentSummary s;
    s.format = cfg_.format;
    s.cluster_size = cfg_.grain;
    s.compressed = cfg_.compressed;
    s.extra = cfg_.extra;
    if (cfg_.scanned) s.extra["grain-map"] = "rebuilt from stream markers";
    return s;
}

}  // namespace hypersdk::format::vmdk
