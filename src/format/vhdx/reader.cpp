// The VHDX reader: one layer per file. Everything is loaded and validated at open (headers, log
// replay, region tables, metadata, BAT, sector bitmaps) and stays immutable, so read() and
// layer_status() are safe from several threads.
#include "format/vhdx/bat.hpp"
#include "format/vhdx/constants.hpp"
#include "format/vhdx/headers.hpp"
#include "format/vhdx/log.hpp"
#include "format/vhdx/metadata.hpp"
#include "format/vhdx/parent_locator.hpp"
#include "format/vhdx/vhdx.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace hypersdk::format::vhdx {

namespace {

// A piece of this layer's address space and where its bytes are.
struct Piece {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    ExtentKind kind = ExtentKind::hole;
    std::uint64_t file_offset = no_host_offset;  // data pieces only
};

// First sector >= `from` (and < `limit`) whose bit differs from `value`.
std::uint64_t bit_run_end(const std::vector<std::uint8_t> &bitmap, std::uint64_t from, std::uint64_t limit, bool value) {
    const std::uint8_t same = value ? 0xFF : 0x00;
    std::uint64_t s = from;
    while (s < limit) {
        if (s % 8 == 0 && s + 8 <= limit && bitmap[static_cast<std::size_t>(s / 8)] == same) {
            s += 8;
            continue;
        }
        const bool bit = ((bitmap[static_cast<std::size_t>(s / 8)] >> (s % 8)) & 1) != 0;
        if (bit != value) break;
        ++s;
    }
    return s;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

class VhdxLayer final : public Layer {
public:
    static Result<std::unique_ptr<Layer>> open(OpenRequest req);

    std::uint64_t virtual_size() const noexcept override { return md_.virtual_size; }

    Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        const bool host_offsets = !file_.replayed();
        return walk(offset, length, [&](const Piece &p) -> Result<void> {
            Extent e{p.offset, p.length, p.kind, 0, no_host_offset};
            if (p.kind == ExtentKind::data && (host_offsets || !file_.patched(p.file_offset, p.length)))
                e.host_offset = p.file_offset;
            append_extent(out, e);
            return success();
        });
    }

    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override {
        // Neighbouring data pieces that are also neighbours in the file become one read.
        std::uint64_t pending_virtual = 0, pending_file = 0, pending_length = 0;
        auto flush = [&]() -> Result<void> {
            if (pending_length == 0) return success();
            auto dst = buf.subspan(static_cast<std::size_t>(pending_virtual - offset), static_cast<std::size_t>(pending_length));
            pending_length = 0;
            return file_.read(pending_file, dst);
        };
        auto walked = walk(offset, buf.size(), [&](const Piece &p) -> Result<void> {
            if (p.kind != ExtentKind::data) {
                std::memset(buf.data() + (p.offset - offset), 0, static_cast<std::size_t>(p.length));
                return success();
            }
            if (pending_length > 0 && pending_virtual + pending_length == p.offset &&
                pending_file + pending_length == p.file_offset) {
                pending_length += p.length;
                return success();
            }
            HSDK_TRYV(flush());
            pending_virtual = p.offset;
            pending_file = p.file_offset;
            pending_length = p.length;
            return success();
        });
        if (!walked) return walked;
        return flush();
    }

    std::optional<BackingRef> backing() const override { return backing_; }

    Result<void> verify_parent(const Layer &parent) override;

    ImageInfo info() const override;

    Result<CheckReport> check() override;

private:
    VhdxLayer(ImageFile file) : file_(std::move(file)) {}

    // Calls fn(piece) for consecutive pieces covering [offset, offset+length) in order.
    template <class Fn>
    Result<void> walk(std::uint64_t offset, std::uint64_t length, Fn &&fn) const;

    std::string subformat() const {
        if (md_.has_parent) return "differencing";
        return md_.leave_blocks_allocated ? "fixed" : "dynamic";
    }

    ImageFile file_;
    std::string creator_;
    ActiveHeader header_;
    std::string region_table_problem_;  // the copy we did not use, or a difference between them
    Regions regions_;
    std::vector<RegionEntry> all_regions_;
    Metadata md_;
    std::optional<ParentLocator> locator_;
    std::optional<BackingRef> backing_;
    std::string parent_path_as_written_;
    LogReplay::State log_state_ = LogReplay::State::none;
    std::uint64_t log_entries_ = 0;
    std::string log_description_;
    Bat bat_;
};

template <class Fn>
Result<void> VhdxLayer::walk(std::uint64_t offset, std::uint64_t length, Fn &&fn) const {
    if (offset > md_.virtual_size || length > md_.virtual_size - offset)
        return fail(Errc::invalid_argument, fmt::format("range {:#x}+{:#x} lies beyond the end of the disk ({} bytes)", offset,
                                                        length, md_.virtual_size));
    const BatGeometry &g = bat_.geometry();
    const std::uint64_t end = offset + length;
    std::uint64_t pos = offset;
    while (pos < end) {
        const std::uint64_t block = pos / g.block_size;
        const std::uint64_t block_start = block * g.block_size;
        const std::uint64_t piece_end = std::min(end, block_start + g.block_size);
        if (auto problem = bat_.block_problem(block)) return fail_corrupt(*problem);
        const std::uint64_t entry = bat_.payload_entry(block);
        switch (static_cast<BlockState>(entry_state(entry))) {
        case BlockState::not_present:
        case BlockState::undefined:
            HSDK_TRYV(fn(Piece{pos, piece_end - pos, ExtentKind::hole}));
            break;
        case BlockState::zero:
        case BlockState::unmapped:
        case BlockState::unmapped_v095:
            HSDK_TRYV(fn(Piece{pos, piece_end - pos, ExtentKind::zero}));
            break;
        case BlockState::fully_present:
            HSDK_TRYV(fn(Piece{pos, piece_end - pos, ExtentKind::data, entry_offset(entry) + (pos - block_start)}));
            break;
        case BlockState::partially_present: {
            const auto *bitmap = bat_.bitmap(block);
            if (bitmap == nullptr) return fail(Errc::internal, fmt::format("sector bitmap of block {} was not loaded", block));
            const std::uint64_t sector = g.logical_sector_size;
            std::uint64_t s = (pos - block_start) / sector;
            const std::uint64_t s_limit = (piece_end - block_start + sector - 1) / sector;
            std::uint64_t at = pos;
            while (at < piece_end) {
                const bool present = ((*bitmap)[static_cast<std::size_t>(s / 8)] >> (s % 8) & 1) != 0;
                const std::uint64_t s_next = bit_run_end(*bitmap, s, s_limit, present);
                const std::uint64_t run_end = std::min(piece_end, block_start + s_next * sector);
                if (present)
                    HSDK_TRYV(fn(Piece{at, run_end - at, ExtentKind::data, entry_offset(entry) + (at - block_start)}));
                else
                    HSDK_TRYV(fn(Piece{at, run_end - at, ExtentKind::hole}));
                at = run_end;
                s = s_next;
            }
            break;
        }
        default:
            return fail_corrupt(fmt::format("payload block {} has invalid state {}", block, entry_state(entry)));
        }
        pos = piece_end;
    }
    return success();
}

Result<std::unique_ptr<Layer>> VhdxLayer::open(OpenRequest req) {
    constexpr std::size_t head_bytes = region_table2_offset + region_table_size;
    if (req.file_size < head_bytes)
        return fail_corrupt(fmt::format("file is {} bytes, too short for the VHDX header section", req.file_size));
    std::vector<std::byte> head(head_bytes);
    HSDK_TRYV(req.file.read_exact(0, head));
    if (std::memcmp(head.data(), file_signature, 8) != 0) return fail_corrupt("not a VHDX file (no 'vhdxfile' signature)");

    std::unique_ptr<VhdxLayer> layer(new VhdxLayer(ImageFile(std::move(req.file), req.file_size)));
    layer->creator_ = parse_creator(std::span(head).first(64 * KiB));
    auto h1 = parse_header(std::span(head).subspan(header1_offset, header_size));
    auto h2 = parse_header(std::span(head).subspan(header2_offset, header_size));
    HSDK_TRY(layer->header_, choose_header(h1, h2));
    const Header &header = layer->header_.header;

    // The log must be replayed before anything else is read; headers are never logged.
    HSDK_TRY(auto replay, replay_log(layer->file_.file(), req.file_size, header));
    layer->log_state_ = replay.state;
    layer->log_entries_ = replay.entries;
    layer->log_description_ = replay.describe();
    layer->file_.set_overlay(std::move(replay.overlay), replay.logical_size);

    // Region tables, through the replayed view. The first valid copy is used.
    std::vector<std::byte> tables(2 * region_table_size);
    HSDK_TRYV(layer->file_.read(region_table1_offset, tables));
    auto rt1 = parse_region_table(std::span(tables).first(region_table_size));
    auto rt2 = parse_region_table(std::span(tables).subspan(region_table_size));
    if (!rt1 && !rt2)
        return fail_corrupt(fmt::format("no valid region table (table 1: {}; table 2: {})", rt1.error().message,
                                        rt2.error().message));
    if (!rt1)
        layer->region_table_problem_ = "region table 1 is invalid (" + rt1.error().message + "); table 2 is used";
    else if (!rt2)
        layer->region_table_problem_ = "region table 2 is invalid (" + rt2.error().message + ")";
    else if (std::memcmp(tables.data() + 4, tables.data() + region_table_size + 4, region_table_size - 4) != 0)
        layer->region_table_problem_ = "the two region tables differ; table 1 is used";
    const RegionTable &rt = rt1 ? rt1.value() : rt2.value();
    const std::uint64_t log_length = header.log_length;
    HSDK_TRY(layer->regions_, locate_regions(rt, layer->file_.size(), header.log_offset, log_length));
    layer->all_regions_ = rt.entries;

    HSDK_TRY(layer->md_, read_metadata(layer->file_, layer->regions_.metadata));
    const Metadata &md = layer->md_;

    if (md.has_parent) {
        auto locator = parse_parent_locator(md.parent_locator);
        if (!locator) return fail(locator.error().with_context("parent locator"));
        layer->locator_ = std::move(locator).value();
        const std::string *relative = layer->locator_->find("relative_path");
        const bool follow = req.options == nullptr || req.options->open_backing;
        if (relative != nullptr) {
            layer->parent_path_as_written_ = *relative;
            layer->backing_ = BackingRef{posix_relative_path(*relative), "vhdx"};
        } else {
            const std::string *absolute = layer->locator_->find("absolute_win32_path");
            const std::string *volume = layer->locator_->find("volume_path");
            layer->parent_path_as_written_ = absolute ? *absolute : volume ? *volume : std::string();
            if (follow)
                return fail_unsupported(fmt::format(
                    "differencing VHDX names its parent only by Windows path ('{}'); without a relative_path the parent "
                    "cannot be located",
                    layer->parent_path_as_written_));
        }
    }

    const BatGeometry geometry = BatGeometry::compute(md.virtual_size, md.block_size, md.logical_sector_size, md.has_parent);
    std::vector<FileRange> reserved{{0, header_section_size, "header section"}};
    if (log_length > 0) reserved.push_back({header.log_offset, header.log_offset + log_length, "log"});
    for (const auto &r : rt.entries) {
        std::string name = r.guid == bat_region_guid        ? "BAT region"
                           : r.guid == metadata_region_guid ? "metadata region"
                                                            : "region " + r.guid.to_string();
        reserved.push_back({r.offset, r.offset + r.length, std::move(name)});
    }
    HSDK_TRY(layer->bat_, Bat::load(layer->file_, layer->regions_.bat, geometry, std::move(reserved)));
    HSDK_TRYV(layer->bat_.load_bitmaps(layer->file_));
    return std::unique_ptr<Layer>(std::move(layer));
}

Result<void> VhdxLayer::verify_parent(const Layer &parent) {
    if (!locator_) return success();
    const ImageInfo pi = parent.info();
    if (pi.format != "vhdx")
        return fail_corrupt(fmt::format("parent of a differencing VHDX must be a VHDX image, '{}' is {}",
                                        parent_path_as_written_, pi.format));
    const std::string parent_guid = lower(pi.format_specific.value("data-write-guid", std::string()));
    std::vector<std::string> expected;
    for (const char *key : {"parent_linkage", "parent_linkage2"}) {
        if (const std::string *v = locator_->find(key)) {
            auto g = Guid::parse(*v);
            if (!g) return fail_corrupt(fmt::format("parent locator {} '{}' is not a GUID", key, *v));
            if (g->to_string() == parent_guid) return success();
            expected.push_back(fmt::format("{} {{{}}}", key, g->to_string()));
        }
    }
    if (expected.empty()) return fail_corrupt("parent locator has no parent_linkage");
    return fail_corrupt(fmt::format("parent '{}' does not match this differencing disk: its DataWriteGuid is {{{}}} but the "
                                    "parent locator expects {} (the parent was modified or replaced)",
                                    parent_path_as_written_, parent_guid, fmt::join(expected, " or ")));
}

ImageInfo VhdxLayer::info() const {
    ImageInfo i;
    i.format = "vhdx";
    i.subformat = subformat();
    i.virtual_size = md_.virtual_size;
    if (auto a = file_.file().allocated_size()) i.actual_size = a.value();
    i.cluster_size = md_.block_size;
    if (md_.has_parent) {
        i.backing_filename = parent_path_as_written_;
        i.backing_format = "vhdx";
    }
    i.dirty = log_state_ == LogReplay::State::replayed;
    i.files = {file_.file().path()};
    const Header &h = header_.header;
    nlohmann::json j;
    j["block-size"] = md_.block_size;
    j["logical-sector-size"] = md_.logical_sector_size;
    j["physical-sector-size"] = md_.physical_sector_size;
    j["leave-blocks-allocated"] = md_.leave_blocks_allocated;
    j["has-parent"] = md_.has_parent;
    j["virtual-disk-id"] = md_.virtual_disk_id.to_string();
    j["data-write-guid"] = h.data_write_guid.to_string();
    j["file-write-guid"] = h.file_write_guid.to_string();
    j["log-guid"] = h.log_guid.to_string();
    j["log-state"] = log_description_;
    j["log-entries-replayed"] = log_entries_;
    j["active-header"] = header_.index;
    j["header-sequence-number"] = h.sequence;
    if (!creator_.empty()) j["creator"] = creator_;
    if (locator_) {
        nlohmann::json pl = nlohmann::json::object();
        for (const auto &[k, v] : locator_->entries) pl[k] = v;
        j["parent-locator"] = std::move(pl);
    }
    i.format_specific = std::move(j);
    return i;
}

Result<CheckReport> VhdxLayer::check() {
    CheckReport r;
    r.format = "vhdx";
    auto error = [&r](std::string m) { r.add_corruption(std::move(m)); };
    if (!header_.other_problem.empty())
        error(fmt::format("header {} is invalid: {} (header {} is used)", header_.index == 1 ? 2 : 1, header_.other_problem,
                          header_.index));
    if (!region_table_problem_.empty()) error(region_table_problem_);

    // Metadata items must not share bytes.
    std::vector<MetadataEntry> items;
    for (const auto &e : md_.entries)
        if (e.length > 0) items.push_back(e);
    std::sort(items.begin(), items.end(), [](const MetadataEntry &a, const MetadataEntry &b) { return a.offset < b.offset; });
    for (std::size_t k = 1; k < items.size(); ++k)
        if (std::uint64_t{items[k - 1].offset} + items[k - 1].length > items[k].offset)
            error(fmt::format("metadata items {} and {} overlap (offsets {:#x} and {:#x})", items[k - 1].guid.to_string(),
                              items[k].guid.to_string(), items[k - 1].offset, items[k].offset));

    const std::uint64_t bad = bat_.problem_count();
    r.corruptions += bad;
    for (auto &m : bat_.all_problems(100)) r.messages.push_back(std::move(m));
    if (bad > 100) r.messages.push_back(fmt::format("... and {} more BAT problems", bad - 100));

    if (log_state_ == LogReplay::State::replayed)
        r.messages.push_back(fmt::format("{} not yet applied to the file (replayed in memory; the file is unchanged)",
                                         log_entries_ == 1 ? "1 log entry is" : fmt::format("{} log entries are", log_entries_)));
    r.allocated_clusters = bat_.allocated_blocks();
    r.total_clusters = bat_.geometry().payload_blocks;
    std::uint64_t end = std::max<std::uint64_t>(bat_.allocated_end(), header_section_size);
    for (const auto &reg : all_regions_) end = std::max(end, reg.offset + reg.length);
    if (header_.header.log_length > 0) end = std::max(end, header_.header.log_offset + header_.header.log_length);
    r.image_end_offset = end;
    return r;
}

}  // namespace

Result<std::unique_ptr<Layer>> open(OpenRequest request) { return VhdxLayer::open(std::move(request)); }

}  // namespace hypersdk::format::vhdx
