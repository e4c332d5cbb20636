// VHD reader: fixed, dynamic and differencing disks.
//
// Fixed: the disk's bytes, then the footer. Dynamic: footer copy, dynamic header, BAT, blocks
// (sector bitmap + data), footer. An allocated block of a dynamic disk is read whole, as qemu
// does (its bitmap is ignored); in a differencing disk the bitmap decides per sector whether the
// data is here (set) or in the parent (clear: a hole that shows the parent).
#include "format/host_holes.hpp"
#include "format/vhd/vhd_driver.hpp"
#include "format/vhd/vhd_format.hpp"
#include "format/vhd/vhd_parent.hpp"

#include "core/endian.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace hypersdk::format::vhd {
namespace {

// Metadata we load (the BAT) is capped: a bigger table belongs to no real VHD (2040 GiB at 2 MiB
// blocks needs 4 MiB of BAT).
constexpr std::uint64_t max_bat_bytes = 256ULL << 20;

std::uint64_t div_round_up(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0); }

std::string timestamp_string(std::uint32_t seconds_since_2000) {
    const std::time_t t = static_cast<std::time_t>(timestamp_epoch + seconds_since_2000);
    std::tm tm{};
    if (::gmtime_r(&t, &tm) == nullptr) return std::to_string(seconds_since_2000);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// Why a 512-byte block is not a usable footer, or "" when it is.
std::string footer_problem(std::span<const std::byte, footer_size> b, std::uint64_t at) {
    if (!has_footer_cookie(b)) return fmt::format("no 'conectix' cookie at offset {:#x}", at);
    if (!footer_checksum_ok(b)) {
        const Footer f = parse_footer(b);
        return fmt::format("footer checksum mismatch at offset {:#x} (stored {:#010x}, computed {:#010x})", at, f.checksum,
                           checksum(b, 64));
    }
    return {};
}

struct Region {
    std::uint64_t start = 0, end = 0;
    std::string what;
};

class VhdLayer final : public Layer {
public:
    static Result<std::unique_ptr<Layer>> open(OpenRequest req);

    std::uint64_t virtual_size() const noexcept override { return virtual_size_; }

    Result<void> layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) override {
        HSDK_TRYV(check_range(offset, length));
        std::vector<Extent> runs;
        HSDK_TRYV(map(offset, length, runs));
        // Stored ranges that are holes in a sparse file read as zeros: no need to copy them.
        for (const auto &r : runs) {
            if (r.kind == ExtentKind::data) HSDK_TRYV(append_split_by_host_holes(file_, r, out));
            else append_extent(out, r);
        }
        return success();
    }

    Result<void> read(std::uint64_t offset, std::span<std::byte> buf) override {
        HSDK_TRYV(check_range(offset, buf.size()));
        if (type_ == DiskType::fixed) return file_.read_exact(offset, buf);
        std::vector<Extent> runs;
        HSDK_TRYV(map(offset, buf.size(), runs));
        for (const auto &r : runs) {
            auto part = buf.subspan(static_cast<std::size_t>(r.offset - offset), static_cast<std::size_t>(r.length));
            if (r.kind == ExtentKind::data) {
                HSDK_TRYV(file_.read_exact(r.host_offset, part));
            } else {
                std::memset(part.data(), 0, part.size());
            }
        }
        return success();
    }

    std::optional<BackingRef> backing() const override {
        if (type_ != DiskType::differencing || !parent_) return std::nullopt;
        // A VHD's parent is always a VHD; naming the format also lets a fixed parent (which has no
        // signature at its start) be opened.
        return BackingRef{parent_->path, "vhd"};
    }

    Result<void> verify_parent(const Layer &parent) override {
        const auto *p = dynamic_cast<const VhdLayer *>(&parent);
        if (p == nullptr)
            return fail_corrupt(fmt::format("the parent of differencing VHD '{}' is not a VHD", file_.path()));
        if (p->footer_.unique_id != header_.parent_id)
            return fail_corrupt(fmt::format("differencing VHD '{}' expects a parent with unique id {}, but '{}' has unique id {}",
                                            file_.path(), uuid_string(header_.parent_id), p->file_.path(),
                                            uuid_string(p->footer_.unique_id)));
        return success();
    }

    ImageInfo info() const override;
    Result<CheckReport> check() override;

private:
    explicit VhdLayer(io::Source file) : file_(std::move(file)) {}

    Result<void> load_footer();
    Result<void> load_dynamic();
    Result<void> load_parent();

    Result<void> check_range(std::uint64_t offset, std::uint64_t length) const {
        if (offset > virtual_size_ || length > virtual_size_ - offset)
            return fail(Errc::invalid_argument,
                        fmt::format("VHD range {:#x}+{:#x} lies beyond the disk ({} bytes)", offset, length, virtual_size_));
        return success();
    }

    std::uint64_t blocks_in_disk() const { return div_round_up(virtual_size_, block_size_); }
    // Bytes of block `index` that matter in the file: its bitmap and the part inside the disk.
    std::uint64_t block_extent(std::uint64_t index) const {
        return bitmap_size_ + std::min<std::uint64_t>(block_size_, virtual_size_ - index * block_size_);
    }

    Result<void> map(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) const;
    Result<void> map_by_bitmap(std::uint64_t block_at, std::uint64_t disk_offset, std::uint64_t in_block,
                               std::uint64_t length, std::vector<Extent> &out) const;

    io::Source file_;
    std::uint64_t file_size_ = 0;
    Footer footer_;
    bool footer_from_end_ = true;
    std::string end_footer_problem_;  // why the end footer was not used
    std::string copy_problem_;        // dynamic disks: why the copy at offset 0 is not a valid footer
    bool copy_identical_ = true;
    DiskType type_ = DiskType::fixed;
    std::uint64_t virtual_size_ = 0;

    std::uint64_t header_offset_ = 0;
    DynamicHeader header_;
    bool header_checksum_ok_ = true;
    std::uint32_t block_size_ = 0;
    std::uint32_t bitmap_size_ = 0;
    std::vector<std::uint32_t> bat_;

    std::vector<DecodedLocator> locators_;
    std::string parent_name_;
    std::optional<ParentChoice> parent_;
};

Result<void> VhdLayer::load_footer() {
    if (file_size_ < footer_size)
        return fail_corrupt(fmt::format("file is too small to be a VHD ({} bytes, a footer alone is 512)", file_size_));
    std::array<std::byte, footer_size> end{}, head{};
    HSDK_TRYV(file_.read_exact(file_size_ - footer_size, end));
    HSDK_TRYV(file_.read_exact(0, head));
    const std::string end_problem = footer_problem(end, file_size_ - footer_size);
    if (end_problem.empty()) {
        footer_ = parse_footer(end);
    } else {
        // Like qemu: a dynamic or differencing disk keeps a copy of its footer at offset 0.
        std::string head_problem = footer_problem(head, 0);
        if (head_problem.empty()) {
            const Footer copy = parse_footer(head);
            if (copy.disk_type == static_cast<std::uint32_t>(DiskType::fixed))
                head_problem = "the footer at offset 0 is of a fixed disk, which keeps no copy there";
            else {
                footer_ = copy;
                footer_from_end_ = false;
                end_footer_problem_ = end_problem;
            }
        }
        if (footer_from_end_) {  // no usable footer anywhere: name the most telling problem
            if (has_footer_cookie(end)) return fail_corrupt(end_problem);
            if (has_footer_cookie(head))
                return fail_corrupt(fmt::format("{} (and no footer at the end of the file: {})", head_problem, end_problem));
            return fail_corrupt("no VHD footer: no 'conectix' cookie at the end of the file or at offset 0");
        }
    }
    switch (footer_.disk_type) {
    case static_cast<std::uint32_t>(DiskType::fixed): type_ = DiskType::fixed; break;
    case static_cast<std::uint32_t>(DiskType::dynamic): type_ = DiskType::dynamic; break;
    case static_cast<std::uint32_t>(DiskType::differencing): type_ = DiskType::differencing; break;
    default: return fail_unsupported(fmt::format("VHD disk type {} (only fixed 2, dynamic 3, differencing 4 exist)", footer_.disk_type));
    }
    if (type_ != DiskType::fixed && footer_from_end_) {
        const std::string problem = footer_problem(head, 0);
        if (!problem.empty()) copy_problem_ = problem;
        else copy_identical_ = std::memcmp(head.data(), end.data(), footer_size) == 0;
    }
    virtual_size_ = virtual_size_of(footer_);
    if (virtual_size_ / sector_size > max_sectors)
        return fail_unsupported(fmt::format("VHD of {} bytes: larger than 2040 GiB, the format's limit", virtual_size_));
    if (type_ == DiskType::fixed && virtual_size_ > file_size_ - footer_size)
        return fail_corrupt(fmt::format("fixed VHD holds {} bytes of data before its footer but declares a {}-byte disk",
                                        file_size_ - footer_size, virtual_size_));
    return success();
}

Result<void> VhdLayer::load_dynamic() {
    header_offset_ = footer_.data_offset;
    // The header must lie between the footer copy and the end footer: nothing it points at can be
    // the footer itself, so no chain of offsets can loop.
    if (header_offset_ < footer_size || header_offset_ > file_size_ || file_size_ - header_offset_ < dynamic_header_size + footer_size)
        return fail_corrupt(fmt::format("dynamic disk header offset {:#x} lies outside the file ({} bytes)", header_offset_, file_size_));
    std::array<std::byte, dynamic_header_size> raw{};
    HSDK_TRYV(file_.read_exact(header_offset_, raw));
    if (!has_dynamic_header_cookie(raw))
        return fail_corrupt(fmt::format("no dynamic disk header ('cxsparse' cookie) at offset {:#x}", header_offset_));
    header_ = parse_dynamic_header(raw);
    header_checksum_ok_ = dynamic_header_checksum_ok(raw);

    block_size_ = header_.block_size;
    if (block_size_ < sector_size || (block_size_ & (block_size_ - 1)) != 0)
        return fail_corrupt(fmt::format("block size {} is not a power of two of at least 512 bytes", block_size_));
    // One bit per sector, padded to whole sectors (qemu's formula gives 0 for blocks under 4 KiB;
    // the specification's gives one sector).
    bitmap_size_ = static_cast<std::uint32_t>(div_round_up(div_round_up(block_size_ / sector_size, 8), sector_size) * sector_size);

    const std::uint64_t needed = blocks_in_disk();
    if (header_.max_table_entries < needed)
        return fail_corrupt(fmt::format("BAT has {} entries, too few for a {}-byte disk of {}-byte blocks (needs {})",
                                        header_.max_table_entries, virtual_size_, block_size_, needed));
    const std::uint64_t table = header_.table_offset;
    const std::uint64_t bat_bytes = std::uint64_t{header_.max_table_entries} * 4;
    if (table % sector_size != 0) return fail_corrupt(fmt::format("BAT offset {:#x} is not sector-aligned", table));
    if (bat_bytes > max_bat_bytes)
        return fail_corrupt(fmt::format("BAT of {} entries is larger than {} MiB", header_.max_table_entries, max_bat_bytes >> 20));
    if (table > file_size_ || bat_bytes > file_size_ - table)
        return fail_corrupt(fmt::format("BAT ({} entries at offset {:#x}) extends beyond the end of the file ({} bytes)",
                                        header_.max_table_entries, table, file_size_));
    std::vector<std::byte> raw_bat(static_cast<std::size_t>(bat_bytes));
    HSDK_TRYV(file_.read_exact(table, raw_bat));
    bat_.resize(header_.max_table_entries);
    for (std::size_t i = 0; i < bat_.size(); ++i) bat_[i] = be32(raw_bat.data(), 4 * i);
    for (std::uint64_t i = 0; i < needed; ++i) {
        if (bat_[i] == bat_unallocated) continue;
        const std::uint64_t at = std::uint64_t{bat_[i]} * sector_size;
        // The bitmap and the part of the block inside the disk must be in the file (qemu wants the
        // whole block; a short last block is tolerated here since nothing past the disk is read).
        if (at > file_size_ || block_extent(i) > file_size_ - at)
            return fail_corrupt(fmt::format("BAT entry {} points to a block at offset {:#x} that extends beyond the end of the "
                                            "file ({} bytes)",
                                            i, at, file_size_));
    }
    return success();
}

Result<void> VhdLayer::load_parent() {
    parent_name_ = utf16_to_utf8(header_.parent_name, /*big_endian=*/true);
    for (std::size_t i = 0; i < header_.locators.size(); ++i) {
        const auto &l = header_.locators[i];
        if (l.empty()) continue;
        if (l.data_length > max_locator_bytes)
            return fail_corrupt(fmt::format("parent locator {} ('{}') claims {} bytes of data; a path is at most {}", i,
                                            fourcc_string(l.platform), l.data_length, max_locator_bytes));
        if (l.data_offset > file_size_ || l.data_length > file_size_ - l.data_offset)
            return fail_corrupt(fmt::format("parent locator {} ('{}') data at offset {:#x} (+{}) lies beyond the end of the file",
                                            i, fourcc_string(l.platform), l.data_offset, l.data_length));
        std::vector<std::byte> data(l.data_length);
        HSDK_TRYV(file_.read_exact(l.data_offset, data));
        locators_.push_back(decode_locator(l.platform, data));
    }
    parent_ = choose_parent(locators_, parent_name_);
    if (!parent_)
        return fail_corrupt("differencing VHD does not say where its parent is (no usable parent locator, empty parent name)");
    return success();
}

Result<std::unique_ptr<Layer>> VhdLayer::open(OpenRequest req) {
    std::unique_ptr<VhdLayer> layer(new VhdLayer(std::move(req.file)));
    layer->file_size_ = req.file_size;
    HSDK_TRYV(layer->load_footer());
    if (layer->type_ != DiskType::fixed) HSDK_TRYV(layer->load_dynamic());
    if (layer->type_ == DiskType::differencing) HSDK_TRYV(layer->load_parent());
    return std::unique_ptr<Layer>(std::move(layer));
}

Result<void> VhdLayer::map(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) const {
    if (length == 0) return success();
    if (type_ == DiskType::fixed) {
        append_extent(out, Extent{offset, length, ExtentKind::data, 0, offset});
        return success();
    }
    const std::uint64_t end = offset + length;
    std::uint64_t pos = offset;
    while (pos < end) {
        const std::uint64_t index = pos / block_size_;
        const std::uint64_t in_block = pos % block_size_;
        const std::uint64_t n = std::min<std::uint64_t>(block_size_ - in_block, end - pos);
        const std::uint32_t entry = bat_[static_cast<std::size_t>(index)];
        if (entry == bat_unallocated) {
            append_extent(out, Extent{pos, n, ExtentKind::hole});
        } else {
            const std::uint64_t block_at = std::uint64_t{entry} * sector_size;
            if (type_ == DiskType::dynamic)
                append_extent(out, Extent{pos, n, ExtentKind::data, 0, block_at + bitmap_size_ + in_block});
            else
                HSDK_TRYV(map_by_bitmap(block_at, pos, in_block, n, out));
        }
        pos += n;
    }
    return success();
}

Result<void> VhdLayer::map_by_bitmap(std::uint64_t block_at, std::uint64_t disk_offset, std::uint64_t in_block,
                                     std::uint64_t length, std::vector<Extent> &out) const {
    const std::uint64_t first_sector = in_block / sector_size;
    const std::uint64_t last_sector = (in_block + length - 1) / sector_size;
    const std::uint64_t first_byte = first_sector / 8;
    std::vector<std::byte> bits(static_cast<std::size_t>(last_sector / 8 - first_byte + 1));
    HSDK_TRYV(file_.read_exact(block_at + first_byte, bits));
    // Sector 0 of the block is the most significant bit of the bitmap's first byte.
    auto is_set = [&](std::uint64_t sector) {
        const auto byte = std::to_integer<unsigned>(bits[static_cast<std::size_t>(sector / 8 - first_byte)]);
        return ((byte >> (7 - sector % 8)) & 1U) != 0;
    };
    const std::uint64_t data_at = block_at + bitmap_size_;
    const std::uint64_t block_start = disk_offset - in_block;
    for (std::uint64_t s = first_sector; s <= last_sector;) {
        const bool set = is_set(s);
        std::uint64_t t = s + 1;
        while (t <= last_sector && is_set(t) == set) ++t;
        const std::uint64_t a = std::max(s * sector_size, in_block);
        const std::uint64_t b = std::min(t * sector_size, in_block + length);
        if (set)
            append_extent(out, Extent{block_start + a, b - a, ExtentKind::data, 0, data_at + a});
        else
            append_extent(out, Extent{block_start + a, b - a, ExtentKind::hole});
        s = t;
    }
    return success();
}

ImageInfo VhdLayer::info() const {
    ImageInfo i;
    i.format = "vhd";
    i.subformat = std::string(disk_type_name(footer_.disk_type));
    i.virtual_size = virtual_size_;
    if (auto a = file_.allocated_size()) i.actual_size = a.value();
    if (type_ != DiskType::fixed) i.cluster_size = block_size_;
    i.files = {file_.path()};
    if (auto b = backing()) {
        i.backing_filename = b->path;
        i.backing_format = b->format;
    }
    auto &j = i.format_specific;
    j["disk-type"] = disk_type_name(footer_.disk_type);
    j["creator-application"] = fourcc_string(footer_.creator_app);
    j["creator-version"] = fmt::format("{}.{}", footer_.creator_version >> 16, footer_.creator_version & 0xFFFF);
    j["creator-host-os"] = fourcc_string(footer_.creator_os);
    j["timestamp"] = timestamp_string(footer_.timestamp);
    j["unique-id"] = uuid_string(footer_.unique_id);
    j["current-size"] = footer_.current_size;
    j["original-size"] = footer_.original_size;
    j["geometry"] = {{"cylinders", footer_.geometry.cylinders},
                     {"heads", footer_.geometry.heads},
                     {"sectors-per-track", footer_.geometry.sectors_per_track}};
    j["chs-size"] = footer_.geometry.total_sectors() * sector_size;
    // Which of the two sizes is the disk's, by qemu-img 7.2's rule (see vhd_format.hpp).
    j["size-source"] = sized_by_current_size(footer_) ? "current-size" : "chs-geometry";
    j["saved-state"] = footer_.saved_state != 0;
    j["temporary"] = (footer_.features & 1U) != 0;
    j["footer"] = footer_from_end_ ? std::string("end of file")
                                   : "copy at offset 0 (the footer at the end of the file is damaged: " + end_footer_problem_ + ")";
    if (type_ != DiskType::fixed) {
        if (!copy_problem_.empty()) j["footer-copy"] = "missing or damaged: " + copy_problem_;
        else if (!copy_identical_) j["footer-copy"] = "differs from the footer at the end of the file";
        j["block-size"] = block_size_;
        j["max-table-entries"] = header_.max_table_entries;
        j["allocated-blocks"] = std::count_if(bat_.begin(), bat_.begin() + static_cast<std::ptrdiff_t>(blocks_in_disk()),
                                              [](std::uint32_t e) { return e != bat_unallocated; });
        j["header-checksum-ok"] = header_checksum_ok_;
    }
    if (type_ == DiskType::differencing) {
        nlohmann::json p;
        p["unique-id"] = uuid_string(header_.parent_id);
        p["timestamp"] = timestamp_string(header_.parent_timestamp);
        p["name"] = parent_name_;
        nlohmann::json locs = nlohmann::json::array();
        for (const auto &l : locators_) locs.push_back({{"platform", fourcc_string(l.platform)}, {"text", l.text}});
        p["locators"] = locs;
        if (parent_) p["followed"] = {{"path", parent_->path}, {"from", parent_->source}};
        j["parent"] = p;
    }
    return i;
}

Result<CheckReport> VhdLayer::check() {
    CheckReport r;
    r.format = "vhd";
    auto error = [&](std::string m) { r.add_corruption("ERROR: " + std::move(m)); };
    if (!footer_from_end_) error("the footer at the end of the file is damaged (" + end_footer_problem_ + "); the copy at offset 0 was used");
    if (type_ == DiskType::fixed) {
        r.image_end_offset = virtual_size_ + footer_size;
        if (file_size_ - footer_size > virtual_size_)
            r.messages.push_back(fmt::format("{} bytes of data lie past the end of the disk, before the footer",
                                             file_size_ - footer_size - virtual_size_));
        return r;
    }
    if (!copy_problem_.empty()) error("the footer copy at offset 0 is missing or damaged: " + copy_problem_);
    else if (!copy_identical_) error("the footer copy at offset 0 differs from the footer at the end of the file");
    if (!header_checksum_ok_) {
        std::array<std::byte, dynamic_header_size> raw{};
        HSDK_TRYV(file_.read_exact(header_offset_, raw));
        error(fmt::format("dynamic disk header checksum mismatch (stored {:#010x}, computed {:#010x})", header_.checksum,
                          checksum(raw, 36)));
    }

    std::vector<Region> regions;
    regions.push_back({0, footer_size, "footer copy"});
    regions.push_back({header_offset_, header_offset_ + dynamic_header_size, "dynamic disk header"});
    regions.push_back({header_.table_offset, header_.table_offset + std::uint64_t{header_.max_table_entries} * 4, "BAT"});
    regions.push_back({file_size_ - footer_size, file_size_, "footer"});
    for (std::size_t i = 0; i < header_.locators.size(); ++i) {
        const auto &l = header_.locators[i];
        if (type_ == DiskType::differencing && !l.empty() && l.data_length > 0)
            regions.push_back({l.data_offset, l.data_offset + l.data_length, fmt::format("parent locator {} data", i)});
    }
    const std::uint64_t blocks = blocks_in_disk();
    std::uint64_t end = 0;
    for (std::uint64_t i = 0; i < blocks; ++i) {
        if (bat_[i] == bat_unallocated) continue;
        ++r.allocated_clusters;
        const std::uint64_t at = std::uint64_t{bat_[i]} * sector_size;
        regions.push_back({at, at + block_extent(i), fmt::format("block {} (offset {:#x})", i, at)});
        end = std::max(end, at + bitmap_size_ + block_size_);
    }
    for (std::uint64_t i = blocks; i < bat_.size(); ++i)
        if (bat_[i] != bat_unallocated) r.add_note(fmt::format("BAT entry {} lies past the end of the disk but is allocated (ignored)", i));
    r.total_clusters = blocks;
    const std::uint64_t bat_end = div_round_up(header_.table_offset + std::uint64_t{header_.max_table_entries} * 4, sector_size) * sector_size;
    r.image_end_offset = std::max(end, bat_end) + footer_size;

    // Every structure must have the file to itself.
    std::sort(regions.begin(), regions.end(), [](const Region &a, const Region &b) { return a.start < b.start; });
    std::size_t furthest = 0;
    for (std::size_t k = 1; k < regions.size(); ++k) {
        if (regions[k].start < regions[furthest].end)
            error(fmt::format("{} overlaps {}", regions[k].what, regions[furthest].what));
        if (regions[k].end > regions[furthest].end) furthest = k;
    }
    return r;
}

}  // namespace

Result<std::unique_ptr<Layer>> open_vhd(OpenRequest request) { return VhdLayer::open(std::move(request)); }

}  // namespace hypersdk::format::vhd
