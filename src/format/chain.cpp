// Composes layers into one block device: unallocated ranges of a layer show its backing layer.
#include "format/layer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace hypersdk {

std::string_view extent_kind_name(ExtentKind kind) noexcept {
    switch (kind) {
    case ExtentKind::data: return "data";
    case ExtentKind::zero: return "zero";
    case ExtentKind::hole: return "hole";
    }
    return "unknown";
}

namespace format {
namespace {

class ChainImage final : public Image {
public:
    ChainImage(std::vector<std::unique_ptr<Layer>> layers, std::vector<ImageInfo> infos)
        : layers_(std::move(layers)), infos_(std::move(infos)) {}

    std::uint64_t virtual_size() const noexcept override { return layers_.front()->virtual_size(); }
    const ImageInfo &info() const noexcept override { return infos_.front(); }
    std::vector<ImageInfo> chain_info() const override { return infos_; }

    Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override {
        HSDK_TRYV(check_range(offset, length));
        std::vector<Extent> out;
        HSDK_TRYV(status_at(0, offset, length, out));
        return out;
    }

    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override {
        HSDK_TRYV(check_range(offset, buf.size()));
        return read_at(0, offset, buf);
    }

private:
    Result<void> check_range(std::uint64_t offset, std::uint64_t length) const {
        if (offset > virtual_size() || length > virtual_size() - offset)
            return fail(Errc::invalid_argument, fmt::format("range {:#x}+{:#x} lies beyond the end of the disk ({} bytes)",
                                                            offset, length, virtual_size()));
        return success();
    }

    Result<void> status_at(std::size_t depth, std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) {
        if (length == 0) return success();
        if (depth == layers_.size()) {
            append_extent(out, Extent{offset, length, ExtentKind::hole, static_cast<std::uint32_t>(depth - 1)});
            return success();
        }
        Layer &layer = *layers_[depth];
        const std::uint64_t size = layer.virtual_size();
        // A backing file shorter than its overlay reads as zeros past its end.
        const std::uint64_t inside = offset >= size ? 0 : std::min(length, size - offset);
        if (inside > 0) {
            std::vector<Extent> runs;
            HSDK_TRYV(layer.layer_status(offset, inside, runs));
            HSDK_TRYV(validate_runs(runs, offset, inside, depth));
            for (const auto &r : runs) {
                if (r.kind == ExtentKind::hole) {
                    HSDK_TRYV(status_at(depth + 1, r.offset, r.length, out));
                } else {
                    Extent e = r;
                    e.depth = static_cast<std::uint32_t>(depth);
                    append_extent(out, e);
                }
            }
        }
        if (inside < length)
            append_extent(out, Extent{offset + inside, length - inside, ExtentKind::hole, static_cast<std::uint32_t>(depth)});
        return success();
    }

    // Drivers are ours, but a bug there must not turn into wrong data silently.
    Result<void> validate_runs(const std::vector<Extent> &runs, std::uint64_t offset, std::uint64_t length, std::size_t depth) const {
        std::uint64_t pos = offset;
        for (const auto &r : runs) {
            if (r.offset != pos || r.length == 0)
                return fail(Errc::internal, fmt::format("layer {} returned a malformed allocation map at {:#x}", depth, pos));
            pos += r.length;
        }
        if (pos != offset + length)
            return fail(Errc::internal, fmt::format("layer {} allocation map ends at {:#x}, expected {:#x}", depth, pos, offset + length));
        return success();
    }

    Result<void> read_at(std::size_t depth, std::uint64_t offset, std::span<std::byte> buf) {
        if (buf.empty()) return success();
        if (depth == layers_.size()) {
            std::memset(buf.data(), 0, buf.size());
            return success();
        }
        Layer &layer = *layers_[depth];
        const std::uint64_t size = layer.virtual_size();
        const std::size_t inside = offset >= size ? 0 : static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - offset));
        if (inside < buf.size()) std::memset(buf.data() + inside, 0, buf.size() - inside);
        if (inside == 0) return success();
        auto part = buf.first(inside);
        if (depth + 1 == layers_.size()) return layer.read(offset, part);  // bottom: holes read as zeros
        std::vector<Extent> runs;
        HSDK_TRYV(layer.layer_status(offset, inside, runs));
        HSDK_TRYV(validate_runs(runs, offset, inside, depth));
        // Coalesce neighbouring non-hole runs into one read of this layer.
        std::size_t i = 0;
        while (i < runs.size()) {
            std::size_t j = i;
            const bool hole = runs[i].kind == ExtentKind::hole;
            while (j + 1 < runs.size() && (runs[j + 1].kind == ExtentKind::hole) == hole) ++j;
            const std::uint64_t start = runs[i].offset, end = runs[j].end();
            auto sub = part.subspan(static_cast<std::size_t>(start - offset), static_cast<std::size_t>(end - start));
            if (hole) {
                HSDK_TRYV(read_at(depth + 1, start, sub));
            } else {
                HSDK_TRYV(layer.read(start, sub));
            }
            i = j + 1;
        }
        return success();
    }

    std::vector<std::unique_ptr<Layer>> layers_;
    std::vector<ImageInfo> infos_;
};

}  // namespace

}  // namespace format

Result<std::unique_ptr<Image>> open_image_range(const std::string &container, std::uint64_t offset, std::uint64_t length,
                                                const std::string &name, const OpenOptions &options) {
    using namespace format;
    // Shown as "<package>/<member>". A window has no neighbours, so nothing it names can be reached.
    const std::string display = container + "/" + name;
    HSDK_TRY(auto whole, open_byte_source(container, options.http));
    HSDK_TRY(auto window, byte_source_window(std::move(whole), offset, length, display));
    OpenOptions o = options;
    o.allow_external_files = false;
    o.open_backing = false;
    std::string fmt_name = o.format == "vpc" ? "vhd" : o.format;
    HSDK_TRY(auto layer, open_layer_source(io::Source(std::move(window)), fmt_name, o));
    if (auto b = layer->backing())
        return fail_unsupported(fmt::format("'{}' has a backing file ('{}'); a disk inside a package must be self-contained", display, b->path));
    auto info = layer->info();
    info.filename = display;
    std::vector<std::unique_ptr<Layer>> layers;
    layers.push_back(std::move(layer));
    return std::unique_ptr<Image>(new ChainImage(std::move(layers), {std::move(info)}));
}

Result<std::unique_ptr<Image>> open_image_source(std::shared_ptr<const ByteSource> source, const OpenOptions &options) {
    using namespace format;
    if (!source) return fail(Errc::invalid_argument, "no source to open an image from");
    std::vector<std::unique_ptr<Layer>> layers;
    std::vector<ImageInfo> infos;
    std::set<std::string> seen;  // by identity: names can differ (links, /proc/self/fd, URL spellings)
    io::Source current(std::move(source));
    std::string current_format = options.format;
    if (current_format == "vpc") current_format = "vhd";
    for (;;) {
        if (!seen.insert(current.source().identity()).second)
            return fail_corrupt(fmt::format("backing chain loops back to '{}'", current.path()));
        if (layers.size() >= options.max_chain_length)
            return fail_corrupt(fmt::format("backing chain of '{}' is longer than {} images", infos.front().filename,
                                            options.max_chain_length));
        const std::string name = current.path();
        HSDK_TRY(auto layer, open_layer_source(current, current_format, options));
        auto info = layer->info();
        info.filename = name;
        if (!current.allocated_size()) info.actual_size_known = false;
        auto backing = layer->backing();
        if (!layers.empty()) HSDK_TRYV(layers.back()->verify_parent(*layer));
        layers.push_back(std::move(layer));
        infos.push_back(std::move(info));
        if (!backing || !options.open_backing) break;
        auto next = current.open_reference(backing->path, options.allow_external_files, "backing file");
        if (!next) return fail(next.error().with_context(fmt::format("'{}'", name)));
        current = std::move(next).value();
        current_format = backing->format;
        // Backing files named without a format are probed like any image, never assumed raw.
        if (current_format == "vpc") current_format = "vhd";
    }
    return std::unique_ptr<Image>(new format::ChainImage(std::move(layers), std::move(infos)));
}

Result<std::unique_ptr<Image>> open_image(const std::string &path, const OpenOptions &options) {
    HSDK_TRY(auto source, open_byte_source(path, options.http));
    return open_image_source(std::move(source), options);
}

}  // namespace hypersdk
