// ByteSource's shared behaviour, the window over another source, and the choice between a local
// file and a URL.
#include <hypersdk/byte_source.hpp>

#include "io/artifact_crypto.hpp"
#include "io/compression.hpp"
#include "cloud/aws/locations.hpp"
#include "cloud/azure/storage.hpp"
#include "cloud/gcp/api.hpp"
#include "cloud/openstack/keystone.hpp"
#include "io/file_source.hpp"
#include "io/http.hpp"
#include "io/http_source.hpp"
#include "io/tar_stream_source.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hypersdk {

Result<std::vector<ByteRun>> ByteSource::allocation(std::uint64_t offset, std::uint64_t length) const {
    std::vector<ByteRun> out;
    const std::uint64_t end = offset >= size() ? offset : offset + std::min(length, size() - offset);
    if (end > offset) out.push_back(ByteRun{offset, end - offset, true});
    return out;
}

Result<std::optional<std::vector<ByteRun>>> ByteSource::changes_since(const ByteSource &) const {
    return std::optional<std::vector<ByteRun>>{};
}

Result<std::shared_ptr<ByteSource>> ByteSource::open_reference(const std::string &reference, bool,
                                                               std::string_view what) const {
    return fail(Errc::permission_denied,
                fmt::format("{} '{}' named by '{}' cannot be followed: the image is not a file in a folder", what,
                            reference, name()));
}

Result<void> ByteSource::read_exact(std::uint64_t offset, std::span<std::byte> buf) const {
    std::size_t done = 0;
    while (done < buf.size()) {
        HSDK_TRY(auto got, read_some(offset + done, buf.subspan(done)));
        if (got == 0) break;
        done += got;
    }
    if (done != buf.size())
        return fail_corrupt(fmt::format("read of {} bytes at offset {:#x} runs past the end of '{}' ({} bytes short)",
                                        buf.size(), offset, name(), buf.size() - done));
    return success();
}

bool is_url(std::string_view location) {
    auto starts = [&](std::string_view scheme) {
        if (location.size() < scheme.size()) return false;
        for (std::size_t i = 0; i < scheme.size(); ++i)
            if (std::tolower(static_cast<unsigned char>(location[i])) != scheme[i]) return false;
        return true;
    };
    return starts("http://") || starts("https://");
}

bool is_remote_location(std::string_view location) {
    return is_url(location) || location.rfind("ebs://", 0) == 0 || location.rfind("s3://", 0) == 0 || location.rfind("gs://", 0) == 0 ||
           location.rfind("glance://", 0) == 0;
}

std::string display_location(std::string_view location) {
    return is_url(location) ? io::http::redact_url(location) : std::string(location);
}

namespace {

Result<std::shared_ptr<ByteSource>> open_stored(const std::string &location, const HttpSourceOptions &http) {
    if (is_url(location)) return io::open_http_source(location, cloud::azure::with_storage_auth(location, http));
    if (location.rfind("ebs://", 0) == 0) return cloud::aws::open_ebs_location(location, http);
    if (location.rfind("s3://", 0) == 0) return cloud::aws::open_s3_location(location, http);
    return io::open_file_source(location);
}

// A remote object named as a compressed stream (query and fragment ignored).
bool has_compressed_suffix(std::string_view location) {
    location = location.substr(0, location.find_first_of("?#"));
    for (std::string_view suffix : {".gz", ".zst", ".lz4"})
        if (location.size() > suffix.size() && location.substr(location.size() - suffix.size()) == suffix) return true;
    return false;
}

// NAME.raw.zst, NAME.img.gz, NAME.raw.lz4 (query and fragment ignored).
bool names_raw_inside(std::string_view location) {
    location = location.substr(0, location.find_first_of("?#"));
    for (std::string_view suffix : {".gz", ".zst", ".lz4"})
        if (location.size() > suffix.size() && location.substr(location.size() - suffix.size()) == suffix) {
            location.remove_suffix(suffix.size());
            break;
        }
    for (std::string_view inner : {".raw", ".img"})
        if (location.size() > inner.size() && location.substr(location.size() - inner.size()) == inner) return true;
    return false;
}

}  // namespace

Result<std::shared_ptr<ByteSource>> open_byte_source(const std::string &location, const HttpSourceOptions &http) {
    // gs:// objects stream their tar archives themselves (one resumable GET, not ranges).
    if (location.rfind("gs://", 0) == 0) return cloud::gcp::open_gs_location(location, http);
    if (location.rfind("glance://", 0) == 0) return cloud::openstack::open_glance_location(location, http);
    if (location.rfind("ebs://", 0) != 0 && io::is_tar_stream_name(location)) {
        HSDK_TRY(auto archive, open_stored(location, http));
        io::TarStreamOptions t;
        t.name = display_location(location);
        t.cancel = http.cancel;
        return io::open_tar_stream_source(io::stream_reader_of(std::move(archive)), t);
    }
    HSDK_TRY(auto stored, open_stored(location, http));
    // An EBS snapshot is a raw volume read block by block: a sparse read must fetch only the
    // blocks it needs, so nothing is looked for in it.
    if (location.rfind("ebs://", 0) == 0) return stored;
    // Looking for an encryption header costs a read: free for a local file, a request elsewhere.
    // Remote sources are looked at only when a key says to expect one.
    const DecryptionKeys keys = io::decryption_keys_of(http);
    const bool remote = is_remote_location(location);
    std::shared_ptr<ByteSource> plain = std::move(stored);
    if (!remote || !keys.empty()) {
        HSDK_TRY(plain, io::decrypt_source_if_encrypted(std::move(plain), keys, http.cancel));
    }
    if (!http.decompress) return plain;
    // Compressed streams (gzip, zstd, lz4) by their magic; remote ones only when the name says so.
    if (remote && !has_compressed_suffix(location)) return plain;
    io::DecompressOptions d;
    d.cancel = http.cancel;
    // NAME.raw.gz, NAME.img.zst, ...: the name says the data is raw (which is never guessed).
    if (names_raw_inside(location)) d.native_format = "raw";
    return io::decompress_if_compressed(std::move(plain), d);
}

namespace {

class WindowSource final : public ByteSource {
public:
    WindowSource(std::shared_ptr<const ByteSource> base, std::uint64_t offset, std::uint64_t length, std::string name)
        : base_(std::move(base)), offset_(offset), length_(length), name_(std::move(name)) {}

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return length_; }

    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= length_) return std::size_t{0};
        return base_->read_some(offset_ + offset,
                                buf.first(static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), length_ - offset))));
    }

    Result<std::vector<ByteRun>> allocation(std::uint64_t offset, std::uint64_t length) const override {
        if (offset >= length_) return std::vector<ByteRun>{};
        HSDK_TRY(auto runs, base_->allocation(offset_ + offset, std::min(length, length_ - offset)));
        for (auto &r : runs) r.offset -= offset_;
        return runs;
    }

    std::optional<std::uint64_t> allocated_size() const override { return length_; }
    std::string identity() const override { return base_->identity() + fmt::format("@{}+{}", offset_, length_); }

private:
    std::shared_ptr<const ByteSource> base_;
    std::uint64_t offset_;
    std::uint64_t length_;
    std::string name_;
};

}  // namespace

Result<std::shared_ptr<ByteSource>> byte_source_window(std::shared_ptr<const ByteSource> base, std::uint64_t offset,
                                                       std::uint64_t length, std::string name) {
    if (!base) return fail(Errc::invalid_argument, "window over no source");
    if (offset > base->size() || length > base->size() - offset)
        return fail_corrupt(fmt::format("'{}' ({} bytes at {:#x}) runs past the end of '{}'", name, length, offset,
                                        base->name()));
    return std::shared_ptr<ByteSource>(std::make_shared<WindowSource>(std::move(base), offset, length, std::move(name)));
}

}  // namespace hypersdk
