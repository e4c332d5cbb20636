#include "format/vmdk/vmdk_layer.hpp"

#include "format/vmdk/extent_open.hpp"
#include "format/vmdk/limits.hpp"
#include "format/vmdk/sparse_header.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <set>

namespace hypersdk::format::vmdk {
namespace {

// createType values whose extents we read.
bool is_image_create_type(std::string_view t) {
    static constexpr std::array<std::string_view, 13> known{
        "monolithicSparse", "monolithicFlat", "streamOptimized", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
        "2GbMaxExtentSparse", "2GbMaxExtentFlat", "vmfs", "vmfsThin", "vmfsSparse", "seSparse", "vmfsPreallocated",
        "vmfsEagerZeroedThick"};
    return std::find(known.begin(), known.end(), t) != known.end();
}

// createType values that describe a physical device rather than an image.
bool is_device_create_type(std::string_view t) {
    static constexpr std::array<std::string_view, 7> devices{"fullDevice", "partitionedDevice", "vmfsRaw", "vmfsRDM",
                                                             "vmfsRawDeviceMap", "vmfsRDMP", "vmfsPassthroughRawDeviceMap"};
    return std::find(devices.begin(), devices.end(), t) != devices.end();
}

Result<std::string> read_text(const ExtentFile &f, std::uint64_t offset, std::uint64_t length, std::string_view where) {
    if (length > max_descriptor_bytes)
        return fail_corrupt(fmt::format("{} of {} bytes exceeds the limit of {} bytes", where, length, max_descriptor_bytes));
    if (!inside_file(offset, length, f.size))
        return fail_corrupt(fmt::format("{} (offset {:#x}, {} bytes) lies beyond the end of the file", where, offset, length));
    std::string raw(static_cast<std::size_t>(length), '\0');
    HSDK_TRYV(f.file.read_exact(offset, std::as_writable_bytes(std::span<char>(raw))));
    HSDK_TRY(auto text, descriptor_text(raw, where));
    return std::string(text);
}

Result<std::uint64_t> sector_bytes(std::uint64_t sectors, std::string_view what) {
    if (auto b = sectors_to_bytes(sectors)) return *b;
    return fail_corrupt(fmt::format("{} of {} sectors is out of range", what, sectors));
}

// The descriptor embedded in a sparse file, as text.
Result<std::string> embedded_descriptor(const ExtentFile &f, const SparseHeader &h) {
    HSDK_TRY(auto at, sector_bytes(h.descriptor_offset, "embedded descriptor offset"));
    HSDK_TRY(auto len, sector_bytes(h.descriptor_size, "embedded descriptor size"));
    return read_text(f, at, len, "embedded descriptor");
}

}  // namespace

Result<std::unique_ptr<Layer>> VmdkLayer::open(OpenRequest req) {
    std::unique_ptr<VmdkLayer> layer(new VmdkLayer());
    layer->path_ = req.path;
    auto own = std::make_shared<ExtentFile>();
    own->size = req.file_size;
    own->path = req.path;
    own->file = std::move(req.file);
    layer->own_ = own;

    std::array<std::byte, 512> head{};
    const auto head_len = static_cast<std::size_t>(std::min<std::uint64_t>(own->size, head.size()));
    HSDK_TRYV(own->file.read_exact(0, std::span<std::byte>(head).first(head_len)));
    const auto head_span = std::span<const std::byte>(head).first(head_len);

    if (has_kdmv_magic(head_span)) {
        if (head_len < head.size())
            return fail_corrupt(fmt::format("sparse extent '{}' is shorter than its 512-byte header", own->path));
        const SparseHeader h = parse_sparse_header(head);
        if (h.capacity == 0 && h.descriptor_offset != 0) {
            // An ESX-style sparse file that only carries a descriptor naming other extents.
            HSDK_TRY(auto text, embedded_descriptor(*own, h));
            HSDK_TRY(auto d, parse_descriptor(text));
            HSDK_TRYV(layer->open_described(d, *req.options));
        } else {
            HSDK_TRYV(layer->open_monolithic(own));
        }
    } else if (has_cowd_magic(head_span)) {
        HSDK_TRYV(layer->open_cowd(own));
    } else {
        if (own->size > max_descriptor_bytes)
            return fail_corrupt(fmt::format("descriptor file of {} bytes exceeds the limit of {} bytes (is this a VMDK descriptor?)",
                                            own->size, max_descriptor_bytes));
        HSDK_TRY(auto text, read_text(*own, 0, own->size, "descriptor file"));
        HSDK_TRY(auto d, parse_descriptor(text));
        HSDK_TRYV(layer->open_described(d, *req.options));
    }
    HSDK_TRYV(layer->finish_open());
    return std::unique_ptr<Layer>(std::move(layer));
}

Result<void> VmdkLayer::open_monolithic(std::shared_ptr<ExtentFile> own) {
    HSDK_TRY(auto sparse, open_hosted_sparse(own, ""));
    const SparseHeader &h = sparse.header;
    if (h.descriptor_offset != 0 && h.descriptor_size != 0) {
        HSDK_TRY(auto text, embedded_descriptor(*own, h));
        HSDK_TRY(auto d, parse_descriptor(text));
        descriptor_ = std::move(d);
        has_descriptor_ = true;
        // The embedded extent list names this file; the header is what counts (as for qemu), but a
        // disagreement means someone edited one and not the other.
        if (descriptor_.extents.size() == 1 && descriptor_.extents[0].sectors != h.capacity)
            findings_.push_back(fmt::format("embedded descriptor maps {} sectors, the sparse header holds {}",
                                            descriptor_.extents[0].sectors, h.capacity));
    }
    // Like qemu: a monolithic file is monolithicSparse, or streamOptimized when its grains are compressed.
    create_type_ = h.compressed() ? "streamOptimized" : "monolithicSparse";
    Part p;
    p.line.sectors = h.capacity;
    p.line.type = ExtentType::sparse;
    p.line.filename = io::base_name(path_);
    p.size = h.capacity * sector_size;
    p.reader = std::move(sparse.reader);
    p.file = std::move(own);
    parts_.push_back(std::move(p));
    return success();
}

Result<void> VmdkLayer::open_cowd(std::shared_ptr<ExtentFile> own) {
    HSDK_TRY(auto reader, open_cowd_extent(own, "VMFSSPARSE"));
    create_type_ = "vmfsSparse";
    Part p;
    p.line.sectors = reader->capacity() / sector_size;
    p.line.type = ExtentType::vmfs_sparse;
    p.line.filename = io::base_name(path_);
    p.size = reader->capacity();
    p.reader = std::move(reader);
    p.file = std::move(own);
    parts_.push_back(std::move(p));
    return success();
}

Result<std::shared_ptr<ExtentFile>> VmdkLayer::extent_file(const std::string &reference, const OpenOptions &options) {
    if (auto it = files_.find(reference); it != files_.end()) return it->second;
    auto f = std::make_shared<ExtentFile>();
    HSDK_TRY(f->file, own_->file.open_reference(reference, options.allow_external_files, "extent file"));
    f->size = f->file.size();
    f->path = f->file.path();
    files_.emplace(reference, f);
    return f;
}

Result<void> VmdkLayer::open_described(const Descriptor &d, const OpenOptions &options) {
    descriptor_ = d;
    has_descriptor_ = true;
    create_type_ = d.create_type;
    if (create_type_.empty()) return fail_corrupt("descriptor has no createType");
    if (is_device_create_type(create_type_))
        return fail_unsupported(fmt::format("createType '{}' maps a physical device; raw device mappings are not images", create_type_));
    if (!is_image_create_type(create_type_)) return fail_unsupported(fmt::format("VMDK createType '{}'", create_type_));
    if (d.extents.empty()) return fail_corrupt("descriptor lists no extents");

    std::uint64_t start = 0;
    std::size_t number = 0;
    for (const auto &line : d.extents) {
        ++number;
        const std::string label = fmt::format("extent {} (descriptor line {})", number, line.line);
        if (line.sectors == 0) continue;
        auto bytes = sectors_to_bytes(line.sectors);
        if (!bytes || *bytes > max_disk_bytes - start)
            return fail_corrupt(fmt::format("{}: the extents add up to more than {} bytes", label, max_disk_bytes));
        if (line.type == ExtentType::vmfs_rdm || line.type == ExtentType::vmfs_raw)
            return fail_unsupported(fmt::format("{} is a {} extent; raw device mappings are not images", label, extent_type_name(line.type)));
        Part p;
        p.line = line;
        p.start = start;
        p.size = *bytes;
        const std::string type_name(extent_type_name(line.type));
        if (line.access == ExtentAccess::noaccess) {
            // Never opened: its sectors fail when read (see docs/formats/vmdk.md).
        } else if (line.type == ExtentType::zero) {
            p.reader = make_zero_extent(*bytes);
        } else {
            auto opened = [&]() -> Result<void> {
                HSDK_TRY(auto f, extent_file(line.filename, options));
                p.file = f;
                if (line.type == ExtentType::flat || line.type == ExtentType::vmfs) {
                    if (!sectors_to_bytes(line.offset)) return fail_corrupt(fmt::format("start sector {} out of range", line.offset));
                    p.reader = make_flat_extent(f, line.offset, type_name);
                    if (p.reader->capacity() < *bytes)
                        return fail_corrupt(fmt::format("flat file '{}' holds {} bytes from sector {}, the descriptor maps {}", f->path,
                                                        p.reader->capacity(), line.offset, *bytes));
                    return success();
                }
                if (line.type == ExtentType::se_sparse) {
                    HSDK_TRY(auto r, open_sesparse_extent(f, type_name));
                    p.reader = std::move(r);
                } else {
                    std::array<std::byte, 512> magic{};
                    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(f->size, magic.size()));
                    HSDK_TRYV(f->file.read_exact(0, std::span<std::byte>(magic).first(n)));
                    if (has_kdmv_magic(std::span<const std::byte>(magic).first(n))) {
                        if (n == magic.size() && parse_sparse_header(magic).capacity == 0)
                            return fail_corrupt(fmt::format("sparse file '{}' has no capacity (a descriptor cannot be an extent)", f->path));
                        HSDK_TRY(auto r, open_hosted_sparse(f, type_name));
                        p.reader = std::move(r.reader);
                    } else if (has_cowd_magic(std::span<const std::byte>(magic).first(n))) {
                        HSDK_TRY(auto r, open_cowd_extent(f, type_name));
                        p.reader = std::move(r);
                    } else {
                        return fail_corrupt(fmt::format("'{}' is neither a hosted (KDMV) nor an ESX (COWD) sparse file", f->path));
                    }
                }
                if (p.reader->capacity() < *bytes)
                    return fail_corrupt(fmt::format("sparse file '{}' holds {} sectors, the descriptor maps {}", f->path,
                                                    p.reader->capacity() / sector_size, line.sectors));
                return success();
            }();
            if (!opened) return fail(opened.error().with_context(label));
        }
        parts_.push_back(std::move(p));
        start += *bytes;
    }
    if (parts_.empty()) return fail_corrupt("descriptor lists only empty extents");
    return success();
}

Result<void> VmdkLayer::finish_open() {
    size_ = parts_.empty() ? 0 : parts_.back().start + parts_.back().size;
    std::set<const ExtentFile *> data_files;
    for (const auto &p : parts_)
        if (p.file) data_files.insert(p.file.get());
    single_data_file_ = data_files.size() == 1;
    if (has_descriptor_) {
        const std::uint32_t parent = descriptor_.parent_cid.value_or(no_parent_cid);
        if (parent != no_parent_cid && descriptor_.parent_file_name_hint.empty())
            return fail_corrupt(fmt::format("delta disk (parentCID {:08x}) names no parent (no parentFileNameHint)", parent));
    }
    return success();
}

std::size_t VmdkLayer::part_at(std::uint64_t offset) const noexcept {
    auto it = std::upper_bound(parts_.begin(), parts_.end(), offset, [](std::uint64_t o, const Part &p) { return o < p.start; });
    return static_cast<std::size_t>(it - parts_.begin()) - 1;
}

Result<void> VmdkLayer::noaccess_error(const Part &p) const {
    return fail(Errc::permission_denied,
                fmt::format("extent '{}' (sectors {}..{}) is marked NOACCESS in the descriptor; its data cannot be read", p.line.filename,
                            p.start / sector_size, (p.start + p.size) / sector_size - 1));
}

Result<void> VmdkLayer::layer_status(std::uint64_t offset, std::uint64_t length, std::vector<Extent> &out) {
    if (length == 0) return success();
    if (offset > size_ || length > size_ - offset) return fail(Errc::invalid_argument, "vmdk: status beyond the end of the disk");
    const std::uint64_t end = offset + length;
    std::vector<Extent> runs;
    for (std::size_t i = part_at(offset); i < parts_.size() && parts_[i].start < end; ++i) {
        const Part &p = parts_[i];
        const std::uint64_t from = std::max(offset, p.start), to = std::min(end, p.start + p.size);
        if (from >= to) continue;
        if (!p.reader) return noaccess_error(p);
        runs.clear();
        HSDK_TRYV(p.reader->status(from - p.start, to - from, runs));
        for (auto r : runs) {
            r.offset += p.start;
            if (!single_data_file_) r.host_offset = no_host_offset;
            append_extent(out, r);
        }
    }
    return success();
}

Result<void> VmdkLayer::read(std::uint64_t offset, std::span<std::byte> buf) {
    if (buf.empty()) return success();
    if (offset > size_ || buf.size() > size_ - offset) return fail(Errc::invalid_argument, "vmdk: read beyond the end of the disk");
    const std::uint64_t end = offset + buf.size();
    for (std::size_t i = part_at(offset); i < parts_.size() && parts_[i].start < end; ++i) {
        const Part &p = parts_[i];
        const std::uint64_t from = std::max(offset, p.start), to = std::min(end, p.start + p.size);
        if (from >= to) continue;
        if (!p.reader) return noaccess_error(p);
        HSDK_TRYV(p.reader->read(from - p.start, buf.subspan(static_cast<std::size_t>(from - offset), static_cast<std::size_t>(to - from))));
    }
    return success();
}

std::optional<BackingRef> VmdkLayer::backing() const {
    // parentCID ffffffff means "no parent"; a parentFileNameHint left next to it is a leftover
    // (qemu would follow it and then refuse the CID mismatch).
    if (descriptor_.parent_cid.value_or(no_parent_cid) == no_parent_cid || descriptor_.parent_file_name_hint.empty())
        return std::nullopt;
    // A VMDK's parent is always a VMDK (qemu assumes the same).
    return BackingRef{descriptor_.parent_file_name_hint, "vmdk"};
}

Result<void> VmdkLayer::verify_parent(const Layer &parent) {
    const std::uint32_t expected = descriptor_.parent_cid.value_or(no_parent_cid);
    const auto *vmdk = dynamic_cast<const VmdkLayer *>(&parent);
    if (vmdk == nullptr)
        return fail_corrupt(fmt::format("'{}' is a VMDK delta but its parent '{}' is not a VMDK image", path_, descriptor_.parent_file_name_hint));
    const auto cid = vmdk->cid();
    if (!cid)
        return fail_corrupt(fmt::format("parent '{}' of '{}' has no CID to match parentCID {:08x}", vmdk->path_, path_, expected));
    if (*cid != expected)
        return fail_corrupt(fmt::format("parent '{}' has CID {:08x} but '{}' expects parentCID {:08x}: the parent changed after "
                                        "this delta was created",
                                        vmdk->path_, *cid, path_, expected));
    return success();
}

ImageInfo VmdkLayer::info() const {
    ImageInfo i;
    i.format = "vmdk";
    i.subformat = create_type_;
    i.virtual_size = size_;
    i.files.push_back(path_);
    std::set<std::string> seen{path_};
    std::uint64_t allocated = 0;
    if (auto a = own_->file.allocated_size()) allocated += a.value();
    for (const auto &p : parts_) {
        if (!p.file || !seen.insert(p.file->path).second) continue;
        i.files.push_back(p.file->path);
        if (auto a = p.file->file.allocated_size()) allocated += a.value();
    }
    i.actual_size = allocated;
    if (!parts_.empty() && parts_.front().reader) i.cluster_size = parts_.front().reader->summary().cluster_size;
    if (auto b = backing()) {
        i.backing_filename = b->path;
        i.backing_format = b->format;
    }
    for (const auto &p : parts_)
        if (p.reader && p.reader->dirty()) i.dirty = true;

    nlohmann::json spec;
    spec["create-type"] = create_type_;
    if (descriptor_.cid) spec["cid"] = *descriptor_.cid;
    spec["parent-cid"] = descriptor_.parent_cid.value_or(no_parent_cid);
    if (!descriptor_.version.empty()) spec["descriptor-version"] = descriptor_.version;
    if (!descriptor_.parent_file_name_hint.empty()) spec["parent-filename-hint"] = descriptor_.parent_file_name_hint;
    if (const auto *v = descriptor_.find_ddb("ddb.adapterType")) spec["adapter-type"] = *v;
    if (const auto *v = descriptor_.find_ddb("ddb.virtualHWVersion")) spec["hw-version"] = *v;
    if (const auto *v = descriptor_.find_ddb("ddb.uuid")) spec["uuid"] = *v;
    const auto *cyl = descriptor_.find_ddb("ddb.geometry.cylinders");
    const auto *heads = descriptor_.find_ddb("ddb.geometry.heads");
    const auto *sectors = descriptor_.find_ddb("ddb.geometry.sectors");
    if (cyl && heads && sectors) spec["geometry"] = {{"cylinders", *cyl}, {"heads", *heads}, {"sectors", *sectors}};
    if (!descriptor_.ddb.empty()) {
        nlohmann::json ddb = nlohmann::json::object();
        for (const auto &[k, v] : descriptor_.ddb) ddb[k.substr(4)] = v;
        spec["ddb"] = std::move(ddb);
    }
    nlohmann::json extents = nlohmann::json::array();
    for (const auto &p : parts_) {
        nlohmann::json e;
        e["filename"] = p.file ? p.file->path : p.line.filename;
        e["virtual-size"] = p.size;
        e["access"] = std::string(extent_access_name(p.line.access));
        if (p.reader) {
            const auto s = p.reader->summary();
            e["format"] = s.format;
            if (s.cluster_size) e["cluster-size"] = *s.cluster_size;
            if (s.compressed) e["compressed"] = true;
            for (auto it = s.extra.begin(); it != s.extra.end(); ++it) e[it.key()] = it.value();
        } else {
            e["format"] = std::string(extent_type_name(p.line.type));
        }
        extents.push_back(std::move(e));
    }
    spec["extents"] = std::move(extents);
    i.format_specific = std::move(spec);
    return i;
}

Result<CheckReport> VmdkLayer::check() {
    CheckReport report;
    report.format = "vmdk";
    CheckSink sink(report);
    for (const auto &f : findings_) sink.error(fmt::format("'{}': {}", path_, f));
    for (const auto &p : parts_)
        if (p.reader) p.reader->check(p.size, sink);
    return report;
}

}  // namespace hypersdk::format::vmdk
