// Disk images as read-only block devices: open (format given or probed), size, allocation, read.
#pragma once

#include <hypersdk/byte_source.hpp>
#include <hypersdk/error.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hypersdk {

// `-o key=value,...` as given; every key is validated by the output format (unknown keys fail).
using FormatOptions = std::vector<std::pair<std::string, std::string>>;
Result<FormatOptions> parse_format_options(std::string_view text);


// What a range of the virtual disk holds.
enum class ExtentKind : std::uint8_t {
    data,  // allocated; its bytes must be read
    zero,  // allocated or marked as zeros: reads as zeros, hides any backing file
    hole,  // allocated in no layer of the chain: reads as zeros
};

std::string_view extent_kind_name(ExtentKind kind) noexcept;

inline constexpr std::uint64_t no_host_offset = std::numeric_limits<std::uint64_t>::max();

struct Extent {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    ExtentKind kind = ExtentKind::hole;
    std::uint32_t depth = 0;                    // chain layer providing it (0 = the image itself)
    std::uint64_t host_offset = no_host_offset;  // where the bytes sit in their file, when plain

    [[nodiscard]] std::uint64_t end() const noexcept { return offset + length; }
    friend bool operator==(const Extent &, const Extent &) = default;
};

// The one view every format driver offers. read() and block_status() may be called from several
// threads at once.
class BlockDevice {
public:
    virtual ~BlockDevice() = default;
    [[nodiscard]] virtual std::uint64_t virtual_size() const noexcept = 0;
    // Runs covering exactly [offset, offset + length) in order; neighbours of equal kind, depth
    // and contiguous host offsets are merged.
    virtual Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) = 0;
    // Reads buf.size() bytes at offset; the range must lie inside virtual_size().
    virtual Result<void> read(std::uint64_t offset, std::span<std::byte> buf) = 0;
};

struct ImageInfo {
    std::string filename;
    std::string format;     // canonical driver name: raw, qcow2, vmdk, vhd, vhdx, vdi
    std::string subformat;  // e.g. streamOptimized, dynamic, fixed; empty when the format has none
    std::uint64_t virtual_size = 0;
    std::uint64_t actual_size = 0;  // bytes the image's own files occupy on disk
    bool actual_size_known = true;  // false for images whose storage does not tell (behind a URL)
    std::optional<std::uint64_t> cluster_size;
    std::string backing_filename;  // as written in the image
    std::string backing_format;    // as written in the image, if it says
    bool dirty = false;
    std::vector<std::string> files;  // every file making up this layer (descriptor, extents, ...)
    nlohmann::json format_specific = nlohmann::json::object();
};

struct OpenOptions {
    std::string format;  // empty: probe by signature. "raw" is never guessed: name it to get it.
    // Backing files, VMDK extents and qcow2 data files must lie in the image's own folder (no absolute
    // path, no "..", no symlink out) unless this is set; see OSSA-2024-001 / CVE-2024-32498.
    bool allow_external_files = false;
    bool open_backing = true;  // false: unallocated ranges of the top image read as zeros
    unsigned max_chain_length = 64;
    // For http:// and https:// images (and the backing files and extents they name, which stay
    // inside the URL's folder under the same rule as local ones).
    HttpSourceOptions http;
};

class Image : public BlockDevice {
public:
    // This image (the top of its chain).
    [[nodiscard]] virtual const ImageInfo &info() const noexcept = 0;
    // The top image followed by its backing files, in order.
    [[nodiscard]] virtual std::vector<ImageInfo> chain_info() const = 0;
};

// qemu-img-like JSON: filename, format, subformat, virtual-size, actual-size, cluster-size,
// backing-filename, backing-filename-format, dirty-flag, files, format-specific.
nlohmann::json to_json(const ImageInfo &info);
// The whole chain, each backing image nested under "backing-image" of its overlay.
nlohmann::json chain_to_json(const std::vector<ImageInfo> &chain);

// `path` is a local file or an http(s) URL.
Result<std::unique_ptr<Image>> open_image(const std::string &path, const OpenOptions &options = {});
// An image in any byte source (a provider's disk, a plugin's); references it names are opened
// through the source's open_reference.
Result<std::unique_ptr<Image>> open_image_source(std::shared_ptr<const ByteSource> source, const OpenOptions &options = {});

// Opens an image kept as a byte range of another file - a disk inside an OVA - without extracting
// it. `name` is the member's name (for messages). A member must be self-contained: backing files
// and extents it names are refused.
Result<std::unique_ptr<Image>> open_image_range(const std::string &container, std::uint64_t offset, std::uint64_t length,
                                                const std::string &name, const OpenOptions &options = {});

// The format a file or URL would be opened as, or unsupported when no signature matches.
Result<std::string> probe_format(const std::string &path, const HttpSourceOptions &http = {});

// Canonical names of the formats we read / write, and alias resolution ("vpc" -> "vhd").
std::vector<std::string> readable_formats();
std::vector<std::string> writable_formats();
std::optional<std::string> canonical_format_name(std::string_view name);

}  // namespace hypersdk
