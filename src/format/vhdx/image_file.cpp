#include "format/vhdx/image_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace hypersdk::format::vhdx {

void Overlay::carve(std::uint64_t begin, std::uint64_t end) {
    // The run starting before `begin` may reach into the range.
    auto it = runs_.lower_bound(begin);
    if (it != runs_.begin()) {
        auto prev = std::prev(it);
        if (prev->second.end > begin) {
            Run tail;
            const std::uint64_t prev_begin = prev->first;
            if (prev->second.end > end) {
                tail.end = prev->second.end;
                if (!prev->second.data.empty())
                    tail.data.assign(prev->second.data.begin() + static_cast<std::ptrdiff_t>(end - prev_begin),
                                     prev->second.data.end());
            }
            prev->second.end = begin;
            if (!prev->second.data.empty()) prev->second.data.resize(static_cast<std::size_t>(begin - prev_begin));
            if (tail.end != 0) runs_.emplace(end, std::move(tail));
            it = runs_.lower_bound(begin);
        }
    }
    while (it != runs_.end() && it->first < end) {
        if (it->second.end <= end) {
            it = runs_.erase(it);
            continue;
        }
        Run rest;
        rest.end = it->second.end;
        if (!it->second.data.empty())
            rest.data.assign(it->second.data.begin() + static_cast<std::ptrdiff_t>(end - it->first), it->second.data.end());
        runs_.erase(it);
        runs_.emplace(end, std::move(rest));
        break;
    }
}

void Overlay::write(std::uint64_t offset, std::vector<std::byte> data) {
    if (data.empty()) return;
    const std::uint64_t end = offset + data.size();
    carve(offset, end);
    runs_.emplace(offset, Run{end, std::move(data)});
}

void Overlay::zero(std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return;
    carve(offset, offset + length);
    runs_.emplace(offset, Run{offset + length, {}});
}

bool Overlay::touches(std::uint64_t offset, std::uint64_t length) const {
    if (runs_.empty() || length == 0) return false;
    auto it = runs_.lower_bound(offset);
    if (it != runs_.end() && it->first < offset + length) return true;
    if (it != runs_.begin() && std::prev(it)->second.end > offset) return true;
    return false;
}

void Overlay::patch(std::uint64_t offset, std::span<std::byte> buf) const {
    if (runs_.empty() || buf.empty()) return;
    const std::uint64_t end = offset + buf.size();
    auto it = runs_.lower_bound(offset);
    if (it != runs_.begin() && std::prev(it)->second.end > offset) --it;
    for (; it != runs_.end() && it->first < end; ++it) {
        const std::uint64_t b = std::max(offset, it->first);
        const std::uint64_t e = std::min(end, it->second.end);
        if (b >= e) continue;
        std::byte *dst = buf.data() + (b - offset);
        if (it->second.data.empty())
            std::memset(dst, 0, static_cast<std::size_t>(e - b));
        else
            std::memcpy(dst, it->second.data.data() + (b - it->first), static_cast<std::size_t>(e - b));
    }
}

Result<void> ImageFile::read(std::uint64_t offset, std::span<std::byte> buf) const {
    if (offset > logical_size_ || buf.size() > logical_size_ - offset)
        return fail_corrupt(fmt::format("read of {} bytes at offset {:#x} crosses the end of '{}' ({:#x} bytes)",
                                        buf.size(), offset, file_.path(), logical_size_));
    const std::uint64_t on_disk = offset >= physical_size_ ? 0 : std::min<std::uint64_t>(buf.size(), physical_size_ - offset);
    if (on_disk > 0) HSDK_TRYV(file_.read_exact(offset, buf.first(static_cast<std::size_t>(on_disk))));
    if (on_disk < buf.size()) std::memset(buf.data() + on_disk, 0, buf.size() - static_cast<std::size_t>(on_disk));
    overlay_.patch(offset, buf);
    return success();
}

}  // namespace hypersdk::format::vhdx
