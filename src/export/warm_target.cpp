#include "export/warm_target.hpp"

#include "format/qcow2/preallocated.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fcntl.h>

namespace hypersdk::exporter {
namespace {

bool all_zero(std::span<const std::byte> data) {
    constexpr std::size_t word = sizeof(std::uint64_t);
    std::size_t i = 0;
    for (; i + word <= data.size(); i += word) {
        std::uint64_t v;
        std::memcpy(&v, data.data() + i, word);
        if (v != 0) return false;
    }
    for (; i < data.size(); ++i)
        if (data[i] != std::byte{0}) return false;
    return true;
}

Result<void> check_format(const std::string &format) {
    if (!WarmTarget::supported(format))
        return fail(Errc::unsupported, fmt::format("unsupported: a warm migration writes qcow2 or raw targets (updated in place "
                                                   "between rounds), not {}; convert the result afterwards (hsdk convert)",
                                                   format));
    return success();
}

}  // namespace

Result<WarmTarget> WarmTarget::create(const std::string &path, const std::string &format, std::uint64_t capacity) {
    HSDK_TRYV(check_format(format));
    HSDK_TRY(auto file, io::File::create_new(path));
    if (format == "raw") {
        HSDK_TRYV(file.truncate(capacity));
        return WarmTarget(std::move(file), 0, capacity);
    }
    HSDK_TRY(auto layout, format::qcow2::create_preallocated(file, capacity));
    HSDK_TRYV(file.sync());
    return WarmTarget(std::move(file), layout.data_offset, capacity);
}

Result<WarmTarget> WarmTarget::open(const std::string &path, const std::string &format, std::uint64_t capacity) {
    HSDK_TRYV(check_format(format));
    HSDK_TRY(auto file, io::File::open_read_write(path));
    if (format == "raw") {
        HSDK_TRY(auto size, file.size());
        if (size != capacity)
            return fail(Errc::conflict, fmt::format("{} holds {} bytes, the disk has {}: not this migration's target", path, size, capacity));
        return WarmTarget(std::move(file), 0, capacity);
    }
    HSDK_TRY(auto layout, format::qcow2::open_preallocated(file));
    if (layout.virtual_size != (capacity + 511) / 512 * 512)
        return fail(Errc::conflict, fmt::format("{} is a disk of {} bytes, the source disk has {}: not this migration's target", path,
                                                layout.virtual_size, capacity));
    return WarmTarget(std::move(file), layout.data_offset, capacity);
}

Result<void> WarmTarget::write(std::uint64_t offset, std::span<const std::byte> data) {
    if (offset > capacity_ || data.size() > capacity_ - offset)
        return fail(Errc::internal, fmt::format("a write at {} (+{}) lies beyond the disk's {} bytes", offset, data.size(), capacity_));
    if (all_zero(data)) return zero(offset, data.size());
    return file_.write_all(base_ + offset, data);
}

Result<void> WarmTarget::zero(std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return success();
    if (::fallocate(file_.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(base_ + offset), static_cast<off_t>(length)) == 0)
        return success();
    // A file system without hole punching: zeros are written.
    std::vector<std::byte> zeros(static_cast<std::size_t>(std::min<std::uint64_t>(length, 1u << 20)), std::byte{0});
    for (std::uint64_t done = 0; done < length;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(length - done, zeros.size()));
        HSDK_TRYV(file_.write_all(base_ + offset + done, std::span<const std::byte>(zeros.data(), n)));
        done += n;
    }
    return success();
}

}  // namespace hypersdk::exporter
