#include <hypersdk/cbt.hpp>

#include <algorithm>

namespace hypersdk {

ChangedExtents ChangedExtents::from_runs(std::vector<ChangedRun> runs) {
    ChangedExtents e;
    e.runs_ = std::move(runs);
    e.normalize();
    return e;
}

void ChangedExtents::normalize() {
    std::erase_if(runs_, [](const ChangedRun &r) { return r.length == 0; });
    std::sort(runs_.begin(), runs_.end(), [](const ChangedRun &a, const ChangedRun &b) { return a.offset < b.offset; });
    std::vector<ChangedRun> merged;
    merged.reserve(runs_.size());
    for (const auto &r : runs_) {
        if (!merged.empty() && r.offset <= merged.back().end())
            merged.back().length = std::max(merged.back().end(), r.end()) - merged.back().offset;
        else
            merged.push_back(r);
    }
    runs_ = std::move(merged);
}

void ChangedExtents::add(std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return;
    if (runs_.empty() || offset > runs_.back().end()) {
        runs_.push_back({offset, length});
    } else if (offset >= runs_.back().offset) {
        runs_.back().length = std::max(runs_.back().end(), offset + length) - runs_.back().offset;
    } else {
        runs_.push_back({offset, length});
        normalize();
    }
}

std::uint64_t ChangedExtents::bytes() const noexcept {
    std::uint64_t n = 0;
    for (const auto &r : runs_) n += r.length;
    return n;
}

bool ChangedExtents::covers(std::uint64_t offset) const noexcept {
    auto it = std::upper_bound(runs_.begin(), runs_.end(), offset, [](std::uint64_t o, const ChangedRun &r) { return o < r.offset; });
    if (it == runs_.begin()) return false;
    --it;
    return offset < it->end();
}

ChangedExtents ChangedExtents::united(const ChangedExtents &other) const {
    std::vector<ChangedRun> all = runs_;
    all.insert(all.end(), other.runs_.begin(), other.runs_.end());
    return from_runs(std::move(all));
}

ChangedExtents ChangedExtents::intersected(const ChangedExtents &other) const {
    ChangedExtents out;
    std::size_t i = 0, j = 0;
    while (i < runs_.size() && j < other.runs_.size()) {
        const auto &a = runs_[i];
        const auto &b = other.runs_[j];
        const std::uint64_t begin = std::max(a.offset, b.offset), end = std::min(a.end(), b.end());
        if (begin < end) out.runs_.push_back({begin, end - begin});
        if (a.end() < b.end()) ++i;
        else ++j;
    }
    return out;
}

ChangedExtents ChangedExtents::clipped(std::uint64_t begin, std::uint64_t end) const {
    ChangedExtents out;
    for (const auto &r : runs_) {
        const std::uint64_t b = std::max(r.offset, begin), e = std::min(r.end(), end);
        if (b < e) out.runs_.push_back({b, e - b});
    }
    return out;
}

ChangedExtents ChangedExtents::aligned(std::uint64_t granule, std::uint64_t limit) const {
    if (granule == 0) return clipped(0, limit);
    std::vector<ChangedRun> widened;
    widened.reserve(runs_.size());
    for (const auto &r : runs_) {
        const std::uint64_t b = r.offset / granule * granule;
        const std::uint64_t e = (r.end() + granule - 1) / granule * granule;
        widened.push_back({b, e - b});
    }
    return from_runs(std::move(widened)).clipped(0, limit);
}

}  // namespace hypersdk
