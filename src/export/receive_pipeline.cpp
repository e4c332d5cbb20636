#include "export/receive_pipeline.hpp"

#include "core/executor.hpp"

#include <cstring>
#include <deque>

namespace hypersdk::exporter {

// One digest fed in order on the worker pool: at most one task of a lane runs at a time (a strand),
// so two lanes hash the same block on two cores while the network thread goes on receiving.
class ReceivePipeline::Lane {
public:
    explicit Lane(DigestAlgorithm algorithm) : digest_(algorithm) {}
    ~Lane() {
        std::unique_lock lock(mutex_);
        idle_.wait(lock, [this] { return !running_; });
    }
    Lane(const Lane &) = delete;
    Lane &operator=(const Lane &) = delete;

    void post(std::uint64_t seq, std::span<const std::byte> data) {
        std::lock_guard lock(mutex_);
        queue_.push_back({seq, data});
        if (running_) return;
        running_ = true;
        core::Executor::instance().workers().post([this] { drain(); });
    }
    void wait_through(std::uint64_t seq) {
        std::unique_lock lock(mutex_);
        idle_.wait(lock, [&] { return done_ >= seq; });
    }
    // Only while nothing is queued (before the first post, or after wait_through the last one).
    Digest &digest() noexcept { return digest_; }
    void reset() {
        std::lock_guard lock(mutex_);
        digest_.reset();
        done_ = 0;
    }

private:
    struct Item {
        std::uint64_t seq;
        std::span<const std::byte> data;
    };
    void drain() {
        for (;;) {
            Item item;
            {
                std::lock_guard lock(mutex_);
                if (queue_.empty()) {
                    running_ = false;
                    idle_.notify_all();
                    return;
                }
                item = queue_.front();
                queue_.pop_front();
            }
            digest_.update(item.data);
            std::lock_guard lock(mutex_);
            done_ = item.seq;
            idle_.notify_all();
        }
    }

    Digest digest_;
    std::mutex mutex_;
    std::condition_variable idle_;
    std::deque<Item> queue_;
    std::uint64_t done_ = 0;
    bool running_ = false;
};

ReceivePipeline::ReceivePipeline(ReceivePipelineOptions options) : options_(options) {
    options_.blocks = std::max<std::size_t>(2, options_.blocks);
    options_.block_bytes = std::max<std::size_t>(64u << 10, options_.block_bytes / 4096 * 4096);
    if (options_.file != nullptr) {
        writes_ = std::make_unique<io::WriteBehind>(options_.blocks);
        options_.file->attach_write_behind(writes_.get());
        // Where the file system refuses O_DIRECT (tmpfs) the blocks are written through the page
        // cache, still one large write each.
        (void)options_.file->enable_direct_writes();
    }
    ring_.resize(options_.blocks);
    for (auto &b : ring_) b.buffer = std::make_unique<pipeline::AlignedBuffer>(options_.block_bytes);
    lanes_.push_back(std::make_unique<Lane>(DigestAlgorithm::sha1));
    if (options_.sha256) lanes_.push_back(std::make_unique<Lane>(DigestAlgorithm::sha256));
}

ReceivePipeline::~ReceivePipeline() {
    (void)wait_all();
    if (options_.file != nullptr) options_.file->attach_write_behind(nullptr);
}

void ReceivePipeline::absorb_existing(std::span<const std::byte> data) {
    for (auto &lane : lanes_) lane->digest().update(data);
}

void ReceivePipeline::start_at(std::uint64_t offset) {
    offset_ = dispatched_end_ = offset;
    Block &b = ring_[current_];
    b.used = 0;
    b.file_offset = offset;
}

Result<void> ReceivePipeline::append(std::span<const std::byte> data) {
    while (!data.empty()) {
        Block &b = ring_[current_];
        // A block ends on a block boundary of the file, so after a resume at an odd offset the
        // blocks that follow are aligned again (and eligible for O_DIRECT).
        const std::size_t capacity = options_.block_bytes - static_cast<std::size_t>(b.file_offset % options_.block_bytes);
        const std::size_t n = std::min(data.size(), capacity - b.used);
        std::memcpy(b.buffer->data() + b.used, data.data(), n);
        b.used += n;
        offset_ += n;
        data = data.subspan(n);
        if (b.used == capacity) HSDK_TRYV(dispatch());
    }
    return success();
}

Result<void> ReceivePipeline::dispatch() {
    Block &b = ring_[current_];
    if (b.used == 0) return success();
    if (failed_) return fail(*failed_);
    const std::span<const std::byte> bytes(b.buffer->data(), b.used);
    b.write_ticket = 0;
    if (options_.file != nullptr) {
        if (auto written = options_.file->write_behind(b.file_offset, bytes); !written) {
            // These bytes never reach the file: nothing after them may be vouched for.
            failed_ = written.error();
            return written;
        }
        b.write_ticket = writes_->ticket();
    }
    b.seq = ++dispatched_;
    for (auto &lane : lanes_) lane->post(b.seq, bytes);

    const std::uint64_t next_offset = b.file_offset + b.used;
    dispatched_end_ = next_offset;
    current_ = (current_ + 1) % ring_.size();
    Block &next = ring_[current_];
    HSDK_TRYV(wait_reusable(next));
    next.used = 0;
    next.file_offset = next_offset;
    return success();
}

Result<void> ReceivePipeline::wait_reusable(Block &block) {
    if (block.seq == 0) return success();
    for (auto &lane : lanes_) lane->wait_through(block.seq);
    if (block.write_ticket != 0) {
        if (auto written = writes_->wait_for(block.write_ticket); !written) {
            failed_ = written.error();
            return written;
        }
    }
    block.seq = 0;
    block.write_ticket = 0;
    return success();
}

Result<void> ReceivePipeline::wait_all() {
    for (auto &lane : lanes_) lane->wait_through(dispatched_);
    for (auto &b : ring_) {
        b.seq = 0;
        b.write_ticket = 0;
    }
    if (writes_) {
        if (auto drained = writes_->drain(); !drained && !failed_) failed_ = drained.error();
    }
    if (failed_) return fail(*failed_);
    return success();
}

Result<std::uint64_t> ReceivePipeline::written_through() {
    if (failed_) return fail(*failed_);
    if (writes_) {
        if (auto written = writes_->wait_for(writes_->ticket()); !written) {
            failed_ = written.error();
            return fail(written.error());
        }
    }
    return dispatched_end_;
}

Result<std::uint64_t> ReceivePipeline::settle() {
    HSDK_TRYV(dispatch());
    HSDK_TRYV(wait_all());
    return offset_;
}

Result<void> ReceivePipeline::restart() {
    auto drained = wait_all();
    if (drained) failed_.reset();
    for (auto &lane : lanes_) lane->reset();
    dispatched_ = 0;
    current_ = 0;
    start_at(0);
    return drained;
}

std::string ReceivePipeline::sha1_hex() { return to_hex(lanes_[0]->digest().finish()); }

std::string ReceivePipeline::sha256_hex() { return lanes_.size() > 1 ? to_hex(lanes_[1]->digest().finish()) : std::string(); }

}  // namespace hypersdk::exporter
