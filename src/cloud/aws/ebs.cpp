#include "cloud/aws/ebs.hpp"

#include "core/base64.hpp"
#include "core/task_pool.hpp"

#include <hypersdk/hash.hpp>
#include <hypersdk/log.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <cstring>
#include <list>
#include <map>
#include <mutex>

namespace hypersdk::cloud::aws {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

constexpr std::uint64_t GiB = 1ull << 30;

// AWS sends BlockIndex as a number; some simulators as a string of digits.
Result<std::uint64_t> index_of(const json &j, const char *key, const std::string &what) {
    if (j.contains(key)) {
        const auto &v = j[key];
        if (v.is_number_unsigned()) return v.get<std::uint64_t>();
        if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
        if (v.is_string()) {
            const std::string s = v.get<std::string>();
            if (!s.empty() && s.size() < 20 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
                return std::stoull(s);
        }
    }
    return fail(Errc::remote_error, fmt::format("{}: an entry without a usable {}", what, key));
}

std::uint64_t number_or(const json &j, const char *key, std::uint64_t fallback) {
    if (!j.contains(key)) return fallback;
    if (j[key].is_number_unsigned()) return j[key].get<std::uint64_t>();
    if (j[key].is_number_integer() && j[key].get<std::int64_t>() > 0) return static_cast<std::uint64_t>(j[key].get<std::int64_t>());
    return fallback;
}

// ExpiryTime: epoch seconds (REST-JSON timestamps), possibly fractional; absent: never.
Clock::time_point expiry_of(const json &page) {
    if (page.contains("ExpiryTime") && page["ExpiryTime"].is_number())
        return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(page["ExpiryTime"].get<double>())));
    return Clock::time_point::max();
}

Result<json> parse_page(const std::string &body, const std::string &what) {
    auto j = json::parse(body, nullptr, false);
    if (!j.is_object()) return fail(Errc::remote_error, fmt::format("{}: the answer is not a JSON object", what));
    return j;
}

std::string base64(std::span<const std::uint8_t> raw) { return core::base64_encode(std::as_bytes(raw)); }

}  // namespace

Result<std::string> ebs_snapshot_id(std::string_view location) {
    constexpr std::string_view scheme = "ebs://";
    if (location.substr(0, scheme.size()) != scheme)
        return fail(Errc::invalid_argument, fmt::format("'{}' is not an ebs://SNAPSHOT_ID location", location));
    std::string id(location.substr(scheme.size()));
    while (!id.empty() && id.back() == '/') id.pop_back();
    if (id.rfind("snap-", 0) != 0 || id.size() < 6 ||
        !std::all_of(id.begin() + 5, id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }))
        return fail(Errc::invalid_argument, fmt::format("'{}' does not name an EBS snapshot (ebs://snap-0123456789abcdef0)", location));
    return id;
}

Result<EbsBlockList> Ebs::list_snapshot_blocks(const std::string &snapshot, std::optional<std::uint64_t> starting_index,
                                               unsigned max_pages) {
    EbsBlockList out;
    std::string token;
    for (unsigned page = 0;; ++page) {
        Call c;
        c.service = "ebs";
        c.path = "/snapshots/" + uri_encode(snapshot, false) + "/blocks";
        c.query = {{"maxResults", "10000"}};
        if (!token.empty()) c.query.emplace_back("pageToken", token);
        else if (starting_index) c.query.emplace_back("startingBlockIndex", std::to_string(*starting_index));
        c.what = "EBS ListSnapshotBlocks " + snapshot;
        HSDK_TRY(auto answer, client_.call(c));
        HSDK_TRY(auto j, parse_page(answer.body, c.what));
        out.block_size = number_or(j, "BlockSize", out.block_size);
        out.volume_size_gib = number_or(j, "VolumeSize", out.volume_size_gib);
        const auto expiry = expiry_of(j);
        if (j.contains("Blocks") && j["Blocks"].is_array())
            for (const auto &b : j["Blocks"]) {
                HSDK_TRY(auto index, index_of(b, "BlockIndex", c.what));
                EbsBlock block{index, b.value("BlockToken", std::string()), expiry};
                out.blocks.push_back(std::move(block));
            }
        token = j.contains("NextToken") && j["NextToken"].is_string() ? j["NextToken"].get<std::string>() : std::string();
        if (token.empty() || (max_pages != 0 && page + 1 >= max_pages)) break;
    }
    std::sort(out.blocks.begin(), out.blocks.end(), [](const EbsBlock &a, const EbsBlock &b) { return a.index < b.index; });
    out.blocks.erase(std::unique(out.blocks.begin(), out.blocks.end(), [](const EbsBlock &a, const EbsBlock &b) { return a.index == b.index; }),
                     out.blocks.end());
    if (out.block_size == 0 || out.block_size > (64u << 20) || out.volume_size_gib == 0)
        return fail(Errc::remote_error, fmt::format("EBS ListSnapshotBlocks {}: no usable BlockSize / VolumeSize in the answer", snapshot));
    return out;
}

Result<EbsChangedList> Ebs::list_changed_blocks(const std::string &first, const std::string &second) {
    EbsChangedList out;
    std::string token;
    for (;;) {
        Call c;
        c.service = "ebs";
        c.path = "/snapshots/" + uri_encode(second, false) + "/changedblocks";
        c.query = {{"firstSnapshotId", first}, {"maxResults", "10000"}};
        if (!token.empty()) c.query.emplace_back("pageToken", token);
        c.what = fmt::format("EBS ListChangedBlocks {} -> {}", first, second);
        HSDK_TRY(auto answer, client_.call(c));
        HSDK_TRY(auto j, parse_page(answer.body, c.what));
        out.block_size = number_or(j, "BlockSize", out.block_size);
        out.volume_size_gib = number_or(j, "VolumeSize", out.volume_size_gib);
        if (j.contains("ChangedBlocks") && j["ChangedBlocks"].is_array())
            for (const auto &b : j["ChangedBlocks"]) {
                HSDK_TRY(auto index, index_of(b, "BlockIndex", c.what));
                EbsChangedBlock block{index, b.value("FirstBlockToken", std::string()), b.value("SecondBlockToken", std::string())};
                if (b.contains("SecondBlockToken") && b["SecondBlockToken"].is_null()) block.second_token.clear();
                out.blocks.push_back(std::move(block));
            }
        // Pages may come back empty and still carry a NextToken: keep going.
        token = j.contains("NextToken") && j["NextToken"].is_string() ? j["NextToken"].get<std::string>() : std::string();
        if (token.empty()) break;
    }
    std::sort(out.blocks.begin(), out.blocks.end(), [](const auto &a, const auto &b) { return a.index < b.index; });
    if (out.block_size == 0 || out.block_size > (64u << 20))
        return fail(Errc::remote_error, fmt::format("EBS ListChangedBlocks {} -> {}: no usable BlockSize in the answer", first, second));
    return out;
}

Result<std::vector<std::byte>> Ebs::get_snapshot_block(const std::string &snapshot, std::uint64_t index, const std::string &token,
                                                       TokenBucket *bucket) {
    const std::string what = fmt::format("EBS GetSnapshotBlock {} block {}", snapshot, index);
    Error last;
    // A body that fails its checksum or arrives short is fetched again a few times: the service's
    // copy is vouched for by the checksum, the transfer is what went wrong.
    for (unsigned attempt = 0; attempt < 3; ++attempt) {
        Call c;
        c.service = "ebs";
        c.path = fmt::format("/snapshots/{}/blocks/{}", uri_encode(snapshot, false), index);
        if (!token.empty()) c.query = {{"blockToken", token}};
        c.what = what;
        c.max_body = 64u << 20;
        HSDK_TRY(auto answer, client_.call(c, bucket));
        const std::string length_header = answer.header("x-amz-Data-Length");
        const std::string checksum = answer.header("x-amz-Checksum");
        const std::string algorithm = answer.header("x-amz-Checksum-Algorithm");
        if (!length_header.empty() && std::to_string(answer.body.size()) != length_header) {
            last = Error{Errc::network_error, fmt::format("{}: {} bytes arrived of the {} the service announced (x-amz-Data-Length)",
                                                          what, answer.body.size(), length_header)};
            continue;
        }
        if (!checksum.empty()) {
            if (!algorithm.empty() && algorithm != "SHA256")
                return fail(Errc::unsupported, fmt::format("{}: checksum algorithm '{}' is not SHA256", what, algorithm));
            Digest d(DigestAlgorithm::sha256);
            d.update(std::string_view(answer.body));
            const auto raw = d.finish();
            const std::string got = base64(raw);
            if (got != checksum) {
                last = Error{Errc::checksum_mismatch,
                             fmt::format("{}: the block's SHA-256 is {}, the service says {}", what, got, checksum)};
                continue;
            }
        }
        std::vector<std::byte> out(answer.body.size());
        std::memcpy(out.data(), answer.body.data(), out.size());
        return out;
    }
    return fail(last);
}

namespace {

// The snapshot's blocks fetched ahead of the reader by a pool of `requests_in_flight` threads
// into a bounded cache; a block still being fetched is waited for, not fetched twice.
class EbsSnapshotSource final : public ByteSource {
public:
    EbsSnapshotSource(std::shared_ptr<Client> client, std::string snapshot, EbsBlockList list, EbsSourceOptions options)
        : client_(std::move(client)),
          snapshot_(std::move(snapshot)),
          name_("ebs://" + snapshot_),
          block_size_(list.block_size),
          size_(list.volume_size_gib * GiB),
          blocks_(std::move(list.blocks)),
          options_(options),
          bucket_(options.rate, std::max(1.0, options.rate / 10)),
          pool_(std::make_unique<core::TaskPool>("ebs-" + snapshot_, std::max(1u, options.requests_in_flight))) {
        capacity_ = std::max<std::size_t>(8, 2 * std::max(1u, options.requests_in_flight));
        if (!options_.cache_path.empty()) open_cache();
    }

    ~EbsSnapshotSource() override {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        pool_.reset();  // queued fetches see stopping_ and return at once; running ones finish first
        if (cache_fd_ >= 0) ::close(cache_fd_);
        if (journal_fd_ >= 0) ::close(journal_fd_);
        if (cache_hits_ > 0)
            log(LogLevel::info, fmt::format("{}: {} block(s) read from the resume cache instead of fetched again", name_, cache_hits_.load()));
    }

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return size_; }
    std::string native_format() const override { return "raw"; }
    std::optional<std::uint64_t> allocated_size() const override { return blocks_.size() * block_size_; }
    [[nodiscard]] const std::string &snapshot() const { return snapshot_; }
    [[nodiscard]] const Client &client() const { return *client_; }

    Result<std::vector<ByteRun>> allocation(std::uint64_t offset, std::uint64_t length) const override {
        std::vector<ByteRun> out;
        if (offset >= size_) return out;
        const std::uint64_t end = offset + std::min(length, size_ - offset);
        {
            std::lock_guard lock(mutex_);
            plan_locked(offset, end);
        }
        auto add = [&](std::uint64_t from, std::uint64_t to, bool data) {
            if (to <= from) return;
            if (!out.empty() && out.back().data == data && out.back().offset + out.back().length == from)
                out.back().length += to - from;
            else
                out.push_back(ByteRun{from, to - from, data});
        };
        std::uint64_t pos = offset;
        for (auto it = first_block_at_or_after(offset / block_size_); it != blocks_.end() && pos < end; ++it) {
            const std::uint64_t b0 = it->index * block_size_;
            if (b0 >= end) break;
            const std::uint64_t b1 = std::min(end, b0 + block_size_);
            add(pos, std::max(pos, b0), false);
            add(std::max(pos, b0), b1, true);
            pos = std::max(pos, b1);
        }
        add(pos, end, false);
        return out;
    }

    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= size_ || buf.empty()) return std::size_t{0};
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset));
        buf = buf.first(n);
        std::memset(buf.data(), 0, n);
        const std::uint64_t first = offset / block_size_, last = (offset + n - 1) / block_size_;
        std::vector<std::pair<std::uint64_t, std::shared_ptr<Slot>>> wanted;
        {
            std::unique_lock lock(mutex_);
            auto it = first_block_at_or_after(first);
            auto end = it;
            for (; end != blocks_.end() && end->index <= last; ++end) wanted.emplace_back(end->index, slot_locked(*end));
            // Read ahead along the listed blocks the reader said it will read: the ranges it
            // asked the allocation of (a conversion: the whole disk; a delta or a backup: only
            // the changed ranges), so nothing it does not want is fetched.
            std::size_t queued = 0;
            for (auto ahead = end; ahead != blocks_.end() && slots_.size() < capacity_ && queued < capacity_ / 2; ++ahead)
                if (planned_locked(ahead->index * block_size_, block_size_)) {
                    slot_locked(*ahead);
                    ++queued;
                }
            for (const auto &wanted_slot : wanted) {
                const Slot &slot = *wanted_slot.second;
                ready_.wait(lock, [&slot] { return slot.state != Slot::State::fetching; });
                if (slot.state == Slot::State::failed) {
                    const Error e = slot.error;
                    slots_.erase(wanted_slot.first);  // the next read tries again
                    return fail(e);
                }
            }
        }
        for (const auto &[index, slot] : wanted) {
            const std::uint64_t b0 = index * block_size_;
            const std::uint64_t from = std::max(offset, b0);
            const std::uint64_t to = std::min(offset + n, b0 + block_size_);
            std::memcpy(buf.data() + (from - offset), slot->data.data() + (from - b0), static_cast<std::size_t>(to - from));
            std::lock_guard lock(mutex_);
            touch_locked(index);
        }
        return n;
    }

    Result<std::optional<std::vector<ByteRun>>> changes_since(const ByteSource &older) const override {
        const auto *base = dynamic_cast<const EbsSnapshotSource *>(&older);
        if (base == nullptr || base->client_->config().endpoint("ebs") != client_->config().endpoint("ebs"))
            return std::optional<std::vector<ByteRun>>{};
        Ebs ebs(*client_);
        auto changed = ebs.list_changed_blocks(base->snapshot_, snapshot_);
        if (!changed) {
            if (changed.error().code == Errc::invalid_argument) {
                log(LogLevel::info, fmt::format("{}; comparing the snapshots' contents instead", changed.error().message));
                return std::optional<std::vector<ByteRun>>{};
            }
            return fail(changed.error());
        }
        std::vector<ByteRun> runs;
        for (const auto &b : changed.value().blocks) {
            const std::uint64_t o = b.index * changed.value().block_size;
            if (o >= size_) continue;
            const std::uint64_t l = std::min<std::uint64_t>(changed.value().block_size, size_ - o);
            if (!runs.empty() && runs.back().offset + runs.back().length == o) runs.back().length += l;
            else runs.push_back(ByteRun{o, l, true});
        }
        return std::optional<std::vector<ByteRun>>{std::move(runs)};
    }

private:
    struct Slot {
        enum class State { fetching, ready, failed } state = State::fetching;
        std::vector<std::byte> data;
        Error error;
        std::uint64_t used = 0;  // LRU clock
    };

    std::vector<EbsBlock>::const_iterator first_block_at_or_after(std::uint64_t index) const {
        return std::lower_bound(blocks_.begin(), blocks_.end(), index, [](const EbsBlock &b, std::uint64_t i) { return b.index < i; });
    }

    // The ranges asked about, merged: where the reader will read.
    void plan_locked(std::uint64_t from, std::uint64_t to) const {
        auto it = planned_.lower_bound(from);
        if (it != planned_.begin() && std::prev(it)->second >= from) --it;
        while (it != planned_.end() && it->first <= to) {
            from = std::min(from, it->first);
            to = std::max(to, it->second);
            it = planned_.erase(it);
        }
        planned_.emplace(from, to);
    }

    bool planned_locked(std::uint64_t offset, std::uint64_t length) const {
        auto it = planned_.upper_bound(offset + length - 1);
        if (it == planned_.begin()) return false;
        --it;
        return it->second > offset;
    }

    void touch_locked(std::uint64_t index) const {
        if (auto it = slots_.find(index); it != slots_.end()) it->second->used = ++clock_;
    }

    // The slot of a block, its fetch queued when it is new. Ready blocks beyond the cache's
    // capacity are dropped, least recently used first.
    std::shared_ptr<Slot> slot_locked(const EbsBlock &block) const {
        if (auto it = slots_.find(block.index); it != slots_.end()) {
            it->second->used = ++clock_;
            return it->second;
        }
        while (slots_.size() >= capacity_) {
            auto victim = slots_.end();
            for (auto it = slots_.begin(); it != slots_.end(); ++it)
                if (it->second->state != Slot::State::fetching && (victim == slots_.end() || it->second->used < victim->second->used))
                    victim = it;
            if (victim == slots_.end()) break;
            slots_.erase(victim);
        }
        auto slot = std::make_shared<Slot>();
        slot->used = ++clock_;
        slots_.emplace(block.index, slot);
        const std::uint64_t index = block.index;
        // `this` outlives every task: the destructor waits for the pool.
        pool_->post([this, slot, index] { fetch(*slot, index); });
        return slot;
    }

    void fetch(Slot &slot, std::uint64_t index) const {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) {
                slot.error = Error{Errc::cancelled, "the snapshot source is closing"};
                slot.state = Slot::State::failed;
                ready_.notify_all();
                return;
            }
        }
        if (auto kept = from_cache(index)) {
            std::lock_guard lock(mutex_);
            slot.data = std::move(*kept);
            slot.state = Slot::State::ready;
            ready_.notify_all();
            return;
        }
        Ebs ebs(*client_);
        auto read_block = [&]() -> Result<std::vector<std::byte>> {
            HSDK_TRY(auto token, token_for(index));
            return ebs.get_snapshot_block(snapshot_, index, token, &bucket_);
        };
        auto got = read_block();
        // An expired block token: list that stretch again and try once more.
        if (!got && got.error().code == Errc::invalid_argument && got.error().message.find("oken") != std::string::npos &&
            refresh_tokens(index))
            got = read_block();
        std::lock_guard lock(mutex_);
        if (got) {
            // A block is always BlockSize long (AWS: 512 KiB); anything else is a broken answer.
            if (got.value().size() != block_size_) {
                slot.error = Error{Errc::remote_error, fmt::format("EBS GetSnapshotBlock {} block {}: {} bytes, not the block size of {}",
                                                                  snapshot_, index, got.value().size(), block_size_)};
                slot.state = Slot::State::failed;
            } else {
                slot.data = std::move(got).value();
                slot.state = Slot::State::ready;
                to_cache(index, slot.data);
            }
        } else {
            slot.error = got.error();
            slot.state = Slot::State::failed;
        }
        ready_.notify_all();
    }

    // The resume cache: blocks a run fetched, at their offsets in one sparse file, each named
    // with its length and SHA-256 by a line of the journal once written (a block cut short by a
    // kill has no line; a line whose block does not match is ignored).
    void open_cache() {
        const std::string blocks = options_.cache_path + ".blocks", journal = options_.cache_path + ".journal";
        cache_fd_ = ::open(blocks.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        journal_fd_ = ::open(journal.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (cache_fd_ < 0 || journal_fd_ < 0) {
            log(LogLevel::warn, fmt::format("{}: no resume cache at {} ({})", name_, options_.cache_path, std::strerror(errno)));
            if (cache_fd_ >= 0) ::close(cache_fd_);
            if (journal_fd_ >= 0) ::close(journal_fd_);
            cache_fd_ = journal_fd_ = -1;
            return;
        }
        std::ifstream in(journal);
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::uint64_t index = 0, length = 0;
            std::string sha;
            if (fields >> index >> length >> sha && length == block_size_ && sha.size() == 64) cached_[index] = {length, sha};
        }
        if (!cached_.empty()) log(LogLevel::info, fmt::format("{}: {} block(s) kept by an earlier run", name_, cached_.size()));
    }

    std::optional<std::vector<std::byte>> from_cache(std::uint64_t index) const {
        if (cache_fd_ < 0) return std::nullopt;
        std::pair<std::uint64_t, std::string> entry;
        {
            std::lock_guard lock(cache_mutex_);
            auto it = cached_.find(index);
            if (it == cached_.end()) return std::nullopt;
            entry = it->second;
        }
        std::vector<std::byte> data(static_cast<std::size_t>(entry.first));
        const auto got = ::pread(cache_fd_, data.data(), data.size(), static_cast<off_t>(index * block_size_));
        if (got != static_cast<ssize_t>(data.size())) return std::nullopt;
        Digest d(DigestAlgorithm::sha256);
        d.update(std::span<const std::byte>(data));
        const auto raw = d.finish();
        if (to_hex(raw) != entry.second) return std::nullopt;
        ++cache_hits_;
        return data;
    }

    void to_cache(std::uint64_t index, const std::vector<std::byte> &data) const {
        if (cache_fd_ < 0) return;
        if (::pwrite(cache_fd_, data.data(), data.size(), static_cast<off_t>(index * block_size_)) != static_cast<ssize_t>(data.size()))
            return;  // not kept: fetched again next time
        Digest d(DigestAlgorithm::sha256);
        d.update(std::span<const std::byte>(data));
        const std::string line = fmt::format("{} {} {}\n", index, data.size(), to_hex(d.finish()));
        std::lock_guard lock(cache_mutex_);
        (void)!::write(journal_fd_, line.data(), line.size());  // one write: a kill leaves whole lines
    }

    // The block's token, listed again first when it expires within a minute.
    Result<std::string> token_for(std::uint64_t index) const {
        {
            std::lock_guard lock(tokens_mutex_);
            auto it = first_block_at_or_after(index);
            if (it == blocks_.end() || it->index != index) return std::string();
            if (it->expiry - std::chrono::seconds(60) > Clock::now()) return token_of(index, it->token);
        }
        refresh_tokens(index);
        std::lock_guard lock(tokens_mutex_);
        return token_of(index, first_block_at_or_after(index)->token);
    }

    std::string token_of(std::uint64_t index, const std::string &listed) const {  // tokens_mutex_ held
        if (auto it = fresh_tokens_.find(index); it != fresh_tokens_.end()) return it->second;
        return listed;
    }

    bool refresh_tokens(std::uint64_t index) const {
        Ebs ebs(*client_);
        auto page = ebs.list_snapshot_blocks(snapshot_, index, 1);
        if (!page) {
            log(LogLevel::warn, fmt::format("renewing the block tokens of {}: {}", name_, page.error().message));
            return false;
        }
        std::lock_guard lock(tokens_mutex_);
        for (const auto &b : page.value().blocks) fresh_tokens_[b.index] = b.token;
        // Expiry of the stretch renewed: the blocks up to the page's last one.
        if (!page.value().blocks.empty()) {
            const std::uint64_t last = page.value().blocks.back().index;
            for (auto it = first_block_at_or_after(index); it != blocks_.end() && it->index <= last; ++it)
                const_cast<EbsBlock &>(*it).expiry = page.value().blocks.front().expiry;
        }
        return true;
    }

    std::shared_ptr<Client> client_;
    std::string snapshot_, name_;
    std::uint64_t block_size_, size_;
    std::vector<EbsBlock> blocks_;
    EbsSourceOptions options_;
    mutable TokenBucket bucket_;
    std::size_t capacity_ = 128;
    mutable std::mutex mutex_;
    mutable std::condition_variable ready_;
    mutable std::map<std::uint64_t, std::shared_ptr<Slot>> slots_;
    mutable std::uint64_t clock_ = 0;
    mutable std::map<std::uint64_t, std::uint64_t> planned_;  // start -> end of the ranges asked about
    mutable bool stopping_ = false;
    mutable std::mutex tokens_mutex_;
    mutable std::map<std::uint64_t, std::string> fresh_tokens_;
    int cache_fd_ = -1, journal_fd_ = -1;
    mutable std::mutex cache_mutex_;
    mutable std::map<std::uint64_t, std::pair<std::uint64_t, std::string>> cached_;  // index -> length, sha256
    mutable std::atomic<std::uint64_t> cache_hits_{0};
    std::unique_ptr<core::TaskPool> pool_;
};

}  // namespace

Result<std::shared_ptr<ByteSource>> open_ebs_snapshot(std::shared_ptr<Client> client, const std::string &snapshot,
                                                      const EbsSourceOptions &options) {
    Ebs ebs(*client);
    HSDK_TRY(auto list, ebs.list_snapshot_blocks(snapshot));
    log(LogLevel::debug, fmt::format("ebs://{}: {} GiB, {} blocks of {} bytes hold data", snapshot, list.volume_size_gib,
                                     list.blocks.size(), list.block_size));
    return std::shared_ptr<ByteSource>(std::make_shared<EbsSnapshotSource>(std::move(client), snapshot, std::move(list), options));
}

}  // namespace hypersdk::cloud::aws
