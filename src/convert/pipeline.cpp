#include "convert/pipeline.hpp"

#include "convert/unit.hpp"
#include "core/executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <mutex>

namespace hypersdk::pipeline {
namespace {

struct Range {
    std::uint64_t begin, end;
};

std::uint64_t align_down(std::uint64_t v, std::uint64_t a) { return v / a * a; }
std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

// Granule-aligned ranges that need work, merged and split into units.
std::vector<Range> plan_units(const std::vector<Range> &interesting, std::uint64_t granule, std::uint64_t unit) {
    std::vector<Range> merged;
    for (const auto &r : interesting) {
        Range a{align_down(r.begin, granule), align_up(r.end, granule)};
        if (!merged.empty() && a.begin <= merged.back().end)
            merged.back().end = std::max(merged.back().end, a.end);
        else
            merged.push_back(a);
    }
    std::vector<Range> units;
    for (const auto &m : merged) {
        // Units start on unit boundaries where possible so reads stay aligned for the source too.
        std::uint64_t pos = m.begin;
        while (pos < m.end) {
            const std::uint64_t next = std::min(m.end, align_down(pos, unit) + unit);
            units.push_back({pos, next});
            pos = next;
        }
    }
    return units;
}

// Plans units window by window (1 GiB of virtual disk at a time), so memory stays bounded however
// large or fragmented the disk: a whole-disk allocation map of a fragmented multi-TiB image could
// hold millions of runs.
class Planner {
public:
    // every_byte: plan the whole disk, not only its data (qemu-img convert -S 0).
    Planner(BlockDevice &source, BlockDevice *backing, std::uint64_t granule, std::uint64_t unit, bool every_byte,
            const ChangedExtents *only)
        : source_(source), backing_(backing), only_(only), granule_(granule), unit_(unit), every_byte_(every_byte),
          window_(std::max<std::uint64_t>(unit, (1ULL << 30) / unit * unit)) {}

    // The next unit in ascending order, or nullopt when the disk is done.
    Result<std::optional<Range>> next() {
        while (queue_.empty()) {
            if (next_window_ >= source_.virtual_size()) return std::optional<Range>();
            HSDK_TRYV(plan_window(next_window_, queue_));
            next_window_ += window_;
        }
        Range r = queue_.front();
        queue_.pop_front();
        return std::optional<Range>(r);
    }

    // Bytes of the source the units cover, for progress: a first pass that keeps nothing.
    Result<std::uint64_t> total_bytes() {
        std::uint64_t total = 0;
        const std::uint64_t size = source_.virtual_size();
        std::deque<Range> units;
        for (std::uint64_t w = 0; w < size; w += window_) {
            units.clear();
            HSDK_TRYV(plan_window(w, units));
            for (const auto &u : units) total += std::min(u.end, size) - std::min(u.begin, size);
        }
        return total;
    }

private:
    Result<void> plan_window(std::uint64_t w, std::deque<Range> &out) {
        const std::uint64_t size = source_.virtual_size();
        const std::uint64_t len = std::min(window_, size - w);
        std::vector<Range> interesting;
        if (only_ != nullptr) {
            // A delta: just the changed ranges; the backing file holds everything else.
            const ChangedExtents in_window = only_->clipped(w, w + len);
            for (const auto &r : in_window.runs()) interesting.push_back({r.offset, r.end()});
            for (const auto &u : plan_units(interesting, granule_, unit_)) out.push_back(u);
            return success();
        }
        if (every_byte_) {
            interesting.push_back({w, w + len});
        } else {
            HSDK_TRY(auto map, source_.block_status(w, len));
            for (const auto &e : map)
                if (e.kind == ExtentKind::data) interesting.push_back({e.offset, e.end()});
        }
        if (backing_ != nullptr && w < backing_->virtual_size()) {
            HSDK_TRY(auto bmap, backing_->block_status(w, std::min(len, backing_->virtual_size() - w)));
            for (const auto &e : bmap)
                if (e.kind == ExtentKind::data) interesting.push_back({e.offset, e.end()});
            std::sort(interesting.begin(), interesting.end(), [](const Range &a, const Range &b) { return a.begin < b.begin; });
        }
        // The window starts on a unit boundary, so granule-aligned units never cross it.
        for (const auto &u : plan_units(interesting, granule_, unit_)) out.push_back(u);
        return success();
    }

    BlockDevice &source_;
    BlockDevice *backing_;
    const ChangedExtents *only_;
    const std::uint64_t granule_, unit_;
    const bool every_byte_;
    const std::uint64_t window_;
    std::uint64_t next_window_ = 0;
    std::deque<Range> queue_;
};

// Units are read, checked for zeros and encoded by tasks on the executor's worker pool; this thread
// plans them, keeps at most `parallel` of them running and a window of finished ones waiting, and
// commits them to the writer in ascending order.
class Pipeline {
public:
    Pipeline(BlockDevice &source, format::DiskWriter &writer, const PipelineOptions &options)
        : source_(source), writer_(writer), options_(options), granule_(writer.granularity()) {}

    ~Pipeline() {
        // Tasks refer to this pipeline: none may outlive it.
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return running_ == 0; });
    }

    Result<PipelineStats> run() {
        if (granule_ == 0 || (granule_ & (granule_ - 1)) != 0)
            return fail(Errc::internal, fmt::format("writer granularity {} is not a power of two", granule_));
        const std::uint64_t unit = std::max(granule_, align_down(options_.unit_bytes, granule_));
        if (options_.sparse_size) {
            const std::uint64_t s = *options_.sparse_size;
            if (s % 512 != 0 || s > unit)
                return fail(Errc::invalid_argument,
                            fmt::format("sparse size {} is not a multiple of 512 from 0 to {}", s, unit));
            detect_ = s == 0 ? 0 : align_up(std::max(s, granule_), granule_);
        } else {
            detect_ = granule_;
        }
        planner_ = std::make_unique<Planner>(source_, options_.backing, granule_, unit, detect_ == 0, options_.only);
        HSDK_TRY(auto total, planner_->total_bytes());
        if (options_.progress) options_.progress->set_total(total);

        const unsigned threads = core::worker_parallelism(options_.threads);
        parallel_ = static_cast<std::size_t>(
            std::min<std::uint64_t>(threads, std::max<std::uint64_t>(1, (total + unit - 1) / unit)));
        window_ = 2 * parallel_ + 2;

        auto committed = commit_loop();
        {
            std::unique_lock lock(mutex_);
            stop_ = true;
            changed_.wait(lock, [this] { return running_ == 0; });
        }
        if (!committed) return fail(committed.error());
        if (first_error_) return fail(*first_error_);
        return PipelineStats{stats_.bytes_read, stats_.bytes_written, stats_.units};
    }

private:
    bool cancelled() const {
        return options_.cancel.is_cancelled() || (options_.progress && options_.progress->token().is_cancelled());
    }

    // Requires mutex_: whether another unit may be planned and started now.
    bool room_locked() const { return !planned_all_ && !stop_ && running_ < parallel_ && issued_ < next_commit_ + window_; }

    void record_error_locked(Error e) {
        if (!first_error_) first_error_ = std::move(e);
        stop_ = true;
    }

    // Plans units (metadata reads only) and posts them while there is room.
    void start_units(std::unique_lock<std::mutex> &lock) {
        while (room_locked()) {
            auto next = planner_->next();
            if (!next) {
                record_error_locked(std::move(next).error());
                return;
            }
            if (!next.value()) {
                planned_all_ = true;
                return;
            }
            const Range range = *next.value();
            const std::size_t index = issued_++;
            ++running_;
            lock.unlock();
            core::Executor::instance().workers().post([this, index, range] { unit_task(index, range); });
            lock.lock();
        }
    }

    void unit_task(std::size_t index, Range range) {
        Result<PreparedUnit> r = Error{};
        if (cancelled()) {
            r = fail(Errc::cancelled, "conversion cancelled");
        } else {
            try {
                r = process(range);
            } catch (const std::bad_alloc &) {
                r = fail(Errc::no_memory, "out of memory in the conversion pipeline");
            } catch (const std::exception &e) {
                r = fail(Errc::internal, e.what());
            }
        }
        std::lock_guard lock(mutex_);
        if (r) done_.emplace(index, std::move(r).value());
        else record_error_locked(std::move(r).error());
        --running_;
        changed_.notify_all();
    }

    Result<PreparedUnit> process(const Range &u) {
        const std::uint64_t size = source_.virtual_size();
        PreparedUnit out;
        out.begin = u.begin;
        const auto len = static_cast<std::size_t>(u.end - u.begin);
        out.buffer = std::make_unique<AlignedBuffer>(len);
        auto buf = out.buffer->span();
        const auto inside = static_cast<std::size_t>(std::min(u.end, size) - u.begin);
        HSDK_TRYV(source_.read(u.begin, buf.first(inside)));
        if (inside < len) std::memset(buf.data() + inside, 0, len - inside);
        out.bytes_read = inside;

        std::unique_ptr<AlignedBuffer> backing_buf;
        if (options_.backing != nullptr) {
            backing_buf = std::make_unique<AlignedBuffer>(len);
            const std::uint64_t bsize = options_.backing->virtual_size();
            const auto binside = static_cast<std::size_t>(u.begin >= bsize ? 0 : std::min<std::uint64_t>(len, bsize - u.begin));
            if (binside) HSDK_TRYV(options_.backing->read(u.begin, backing_buf->span().first(binside)));
            if (binside < len) std::memset(backing_buf->data() + binside, 0, len - binside);
        }
        HSDK_TRYV(prepare_unit(writer_, out, detect_,
                               backing_buf ? std::span<const std::byte>(backing_buf->span()) : std::span<const std::byte>(),
                               options_.unread_backing));
        return out;
    }

    Result<void> commit_loop() {
        RetiredUnits retired(options_.io_fence);
        for (;;) {
            PreparedUnit unit;
            {
                std::unique_lock lock(mutex_);
                start_units(lock);
                changed_.wait(lock, [this] {
                    return first_error_.has_value() || done_.count(next_commit_) != 0 || (planned_all_ && next_commit_ == issued_) ||
                           room_locked();
                });
                if (first_error_) return success();  // reported by run()
                if (done_.count(next_commit_) == 0) {
                    if (planned_all_ && next_commit_ == issued_) break;  // everything planned is committed
                    continue;                                            // room to start more units
                }
                auto node = done_.extract(next_commit_);
                unit = std::move(node.mapped());
            }
            if (cancelled()) return fail(Errc::cancelled, "conversion cancelled");
            HSDK_TRYV(commit_unit(writer_, unit, stats_));
            if (options_.progress) options_.progress->advance(unit.bytes_read);
            HSDK_TRYV(retired.retire(std::move(unit)));
            {
                std::lock_guard lock(mutex_);
                ++next_commit_;
            }
        }
        return retired.drain_all();
    }

    BlockDevice &source_;
    format::DiskWriter &writer_;
    const PipelineOptions &options_;
    const std::uint64_t granule_;
    std::uint64_t detect_ = 0;  // zeros are looked for in pieces of this size; 0: not at all
    std::unique_ptr<Planner> planner_;
    std::size_t parallel_ = 1;
    std::size_t window_ = 4;

    std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t issued_ = 0;   // units planned and posted
    std::size_t running_ = 0;  // posted tasks not yet finished
    bool planned_all_ = false;
    std::size_t next_commit_ = 0;
    bool stop_ = false;
    std::optional<Error> first_error_;
    std::map<std::size_t, PreparedUnit> done_;
    CommitStats stats_;
};

}  // namespace

Result<PipelineStats> run_pipeline(BlockDevice &source, format::DiskWriter &writer, const PipelineOptions &options) {
    Pipeline p(source, writer, options);
    return p.run();
}

}  // namespace hypersdk::pipeline
