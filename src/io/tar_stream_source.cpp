#include "io/tar_stream_source.hpp"

#include "io/tar.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace hypersdk::io {
namespace {

constexpr std::size_t tar_block = 512;

// The producer stops feeding when asked to start over or to stop; this error says which.
constexpr std::string_view restart_marker = "tar stream: restart";

// gunzip (every member of a multi-member file, each checksum verified) or pass-through for a
// plain tar, decided by the first two bytes.
class Decoder {
public:
    explicit Decoder(std::string name) : name_(std::move(name)), out_(1u << 20) {}

    template <class Emit>
    Result<void> feed(std::span<const std::byte> in, Emit &&emit) {
        if (!mode_) {
            magic_.insert(magic_.end(), in.begin(), in.end());
            if (magic_.size() < 2) return success();
            mode_ = magic_[0] == std::byte{0x1f} && magic_[1] == std::byte{0x8b} ? Mode::gzip : Mode::plain;
            if (*mode_ == Mode::gzip) start_member();
            std::vector<std::byte> first;
            first.swap(magic_);
            return feed(first, emit);
        }
        if (*mode_ == Mode::plain) return emit(in);
        compressed_ += in.size();
        st_.next_in = reinterpret_cast<std::uint8_t *>(const_cast<std::byte *>(in.data()));
        st_.avail_in = static_cast<std::uint32_t>(in.size());
        while (true) {
            if (member_done_) {
                if (st_.avail_in == 0) return success();
                // Another gzip member follows (pigz, concatenated files).
                auto *next = st_.next_in;
                auto avail = st_.avail_in;
                start_member();
                st_.next_in = next;
                st_.avail_in = avail;
            }
            st_.next_out = reinterpret_cast<std::uint8_t *>(out_.data());
            st_.avail_out = static_cast<std::uint32_t>(out_.size());
            const int rc = isal_inflate(&st_);
            if (rc < 0) return fail_corrupt(fmt::format("{}: {} after {} compressed bytes", name_, describe(rc), compressed_ - st_.avail_in));
            const std::size_t produced = out_.size() - st_.avail_out;
            if (produced > 0) HSDK_TRYV(emit(std::span<const std::byte>(out_.data(), produced)));
            if (st_.block_state == ISAL_BLOCK_FINISH) {
                member_done_ = true;
                continue;
            }
            if (produced == 0 && st_.avail_in == 0) return success();
        }
    }

    // The stream ended: a gzip stream must end at the end of a member.
    Result<void> finish() const {
        if (!mode_) return fail_corrupt(fmt::format("{}: the stream is empty", name_));
        if (*mode_ == Mode::gzip && !member_done_)
            return fail_corrupt(fmt::format("{}: the gzip stream is cut short after {} compressed bytes (truncated)", name_, compressed_));
        return success();
    }

private:
    enum class Mode { gzip, plain };

    void start_member() {
        isal_inflate_init(&st_);
        st_.crc_flag = ISAL_GZIP;
        member_done_ = false;
    }

    static const char *describe(int rc) {
        switch (rc) {
        case ISAL_INCORRECT_CHECKSUM: return "gzip checksum mismatch (the data is corrupt)";
        case ISAL_INVALID_WRAPPER: return "not a valid gzip header";
        case ISAL_UNSUPPORTED_METHOD: return "gzip compression method not supported";
        default: return "invalid deflate data (the data is corrupt)";
        }
    }

    std::string name_;
    std::optional<Mode> mode_;
    std::vector<std::byte> magic_;
    inflate_state st_{};
    bool member_done_ = false;
    std::vector<std::byte> out_;
    std::uint64_t compressed_ = 0;
};

// Walks tar headers and hands on the chosen member's data; everything else is skipped.
class TarWalker {
public:
    TarWalker(std::string name, std::string member) : name_(std::move(name)), member_(std::move(member)) {}

    // on_member(size) once the member's header is seen; on_data(bytes) for its contents in order.
    template <class OnMember, class OnData>
    Result<void> feed(std::span<const std::byte> in, OnMember &&on_member, OnData &&on_data) {
        while (!in.empty()) {
            if (state_ == State::after) return success();  // padding, later members, end blocks
            if (state_ == State::header) {
                const std::size_t take = std::min(in.size(), tar_block - header_fill_);
                std::memcpy(header_ + header_fill_, in.data(), take);
                header_fill_ += take;
                in = in.subspan(take);
                at_ += take;
                if (header_fill_ < tar_block) continue;
                header_fill_ = 0;
                HSDK_TRYV(on_header(on_member));
                continue;
            }
            const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining_));
            if (state_ == State::member) HSDK_TRYV(on_data(in.first(take)));
            if (state_ == State::extension) extension_.append(reinterpret_cast<const char *>(in.data()), take);
            in = in.subspan(take);
            at_ += take;
            remaining_ -= take;
            if (remaining_ == 0) HSDK_TRYV(end_of_entry());
        }
        return success();
    }

    [[nodiscard]] bool member_complete() const noexcept { return state_ == State::after; }
    [[nodiscard]] bool member_found() const noexcept { return found_; }

private:
    enum class State { header, member, skip, extension, after };

    template <class OnMember>
    Result<void> on_header(OnMember &&on_member) {
        const std::uint64_t header_at = at_ - tar_block;
        if (std::all_of(header_, header_ + tar_block, [](std::byte b) { return b == std::byte{0}; })) {
            return fail(Errc::not_found, member_.empty() ? fmt::format("{}: the archive holds no file", name_)
                                                         : fmt::format("{}: the archive holds no '{}'", name_, member_));
        }
        auto h = parse_tar_header(std::span<const std::byte, tar_block>(header_, tar_block), header_at);
        if (!h) return fail(h.error().with_context(name_));
        TarHeader header = std::move(h.value());
        if (has_pending_size_) header.size = pending_size_;
        entry_type_ = header.type;
        padded_ = (header.size + tar_block - 1) / tar_block * tar_block - header.size;
        remaining_ = header.size;
        if (header.type == 'x' || header.type == 'L') {
            if (header.size > (1u << 20)) return fail_corrupt(fmt::format("{}: tar extended header at {:#x} is too large", name_, header_at));
            extension_.clear();
            state_ = State::extension;
        } else {
            std::string entry = pending_path_.empty() ? header.name : pending_path_;
            pending_path_.clear();
            has_pending_size_ = false;
            const bool regular = header.type == '0' || header.type == '\0' || header.type == '7';
            const bool wanted = regular && (member_.empty() ? true : entry == member_ || entry == "./" + member_);
            if (header.type == 'S') return fail_unsupported(fmt::format("{}: '{}' is a GNU sparse tar member", name_, entry));
            if (wanted) {
                found_ = true;
                state_ = State::member;
                HSDK_TRYV(on_member(header.size));
            } else {
                state_ = State::skip;
            }
        }
        if (remaining_ == 0) return end_of_entry();
        return success();
    }

    Result<void> end_of_entry() {
        if (state_ == State::extension) {
            if (entry_type_ == 'L') pending_path_ = std::string(extension_.c_str());
            else HSDK_TRYV(parse_pax_records(extension_, pending_path_, pending_size_, has_pending_size_, at_));
        }
        const bool was_member = state_ == State::member;
        if (padded_ > 0) {
            remaining_ = padded_;
            padded_ = 0;
            state_ = was_member ? State::after : State::skip;
            return success();
        }
        state_ = was_member ? State::after : State::header;
        return success();
    }

    std::string name_, member_;
    State state_ = State::header;
    std::byte header_[tar_block];
    std::size_t header_fill_ = 0;
    std::uint64_t at_ = 0, remaining_ = 0, padded_ = 0;
    char entry_type_ = '0';
    std::string extension_, pending_path_;
    std::uint64_t pending_size_ = 0;
    bool has_pending_size_ = false;
    bool found_ = false;
};

class TarStreamSource final : public ByteSource, public std::enable_shared_from_this<TarStreamSource> {
public:
    TarStreamSource(StreamReader reader, TarStreamOptions options) : reader_(std::move(reader)), o_(std::move(options)) {
        display_ = o_.name + (o_.member.empty() ? std::string() : " (" + o_.member + ")");
    }
    ~TarStreamSource() override {
        {
            std::lock_guard lock(m_);
            stop_ = true;
            pass_stop_.cancel();
        }
        cv_.notify_all();
        if (producer_.joinable()) producer_.join();
    }

    Result<void> start() {
        if (!o_.tar) {
            size_ = o_.size;
            size_known_ = true;
        }
        producer_ = std::thread([this] { run(); });
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return size_known_ || error_.has_value(); });
        if (!size_known_) return fail(*error_);
        return success();
    }

    const std::string &name() const noexcept override { return display_; }
    std::uint64_t size() const noexcept override { return size_; }
    std::string native_format() const override { return "raw"; }

    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= size_ || buf.empty()) return std::size_t{0};
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset));
        std::unique_lock lock(m_);
        auto pending = pending_.end();
        auto unregister = [&] {
            if (pending != pending_.end()) pending_.erase(pending);
            pending = pending_.end();
        };
        newest_ = std::max<std::uint64_t>(newest_, offset + n);
        while (true) {
            if (stop_) return fail(Errc::cancelled, display_ + ": closed");
            if (auto c = o_.cancel.check(); !c) {
                pass_stop_.cancel();  // the transfer too, even if it is waiting for the network
                unregister();
                return fail(c.error());
            }
            if (offset < lo_) {
                // Behind the window: the stream has to be read again from its start.
                if (!restart_requested_) {
                    log(LogLevel::info, fmt::format("{}: a read at {:#x} lies behind the stream's window; reading the stream again from its start",
                                                    display_, offset));
                    restart_requested_ = true;
                    pass_stop_.cancel();
                }
                if (pending == pending_.end()) pending = pending_.insert(offset);
                cv_.notify_all();
                cv_.wait_for(lock, std::chrono::milliseconds(100));
                continue;
            }
            const std::uint64_t readable = finished_ ? hi_ : std::min<std::uint64_t>(hi_, size_ - 1);
            if (offset + n <= readable) {
                copy_out(offset, buf.first(n));
                unregister();
                cv_.notify_all();
                return n;
            }
            if (error_) {
                unregister();
                return fail(*error_);
            }
            // Again: a restart set the pace back to the pending offsets, and a read longer than
            // the window would otherwise wait for bytes the producer never runs ahead to.
            newest_ = std::max<std::uint64_t>(newest_, offset + n);
            if (pending == pending_.end()) pending = pending_.insert(offset);
            cv_.notify_all();
            cv_.wait_for(lock, std::chrono::milliseconds(100));
        }
    }

private:
    struct Chunk {
        std::uint64_t offset;
        std::vector<std::byte> bytes;
    };

    void copy_out(std::uint64_t offset, std::span<std::byte> out) const {
        auto it = std::upper_bound(chunks_.begin(), chunks_.end(), offset, [](std::uint64_t o, const Chunk &c) { return o < c.offset; });
        --it;  // the chunk holding `offset` (offset >= lo_ == front's offset)
        std::size_t done = 0;
        while (done < out.size()) {
            const std::uint64_t at = offset + done;
            const std::size_t skip = static_cast<std::size_t>(at - it->offset);
            const std::size_t take = std::min(out.size() - done, it->bytes.size() - skip);
            std::memcpy(out.data() + done, it->bytes.data() + skip, take);
            done += take;
            ++it;
        }
    }

    // Keeps what pending readers and the window behind the newest read still need.
    void discard_old() {
        std::uint64_t floor = newest_ > o_.window_bytes ? newest_ - o_.window_bytes : 0;
        if (!pending_.empty()) floor = std::min(floor, *pending_.begin());
        while (!chunks_.empty() && chunks_.front().offset + chunks_.front().bytes.size() <= floor) {
            chunks_.pop_front();
            lo_ = chunks_.empty() ? hi_ : chunks_.front().offset;
        }
    }

    Result<void> deliver(std::span<const std::byte> bytes) {
        std::unique_lock lock(m_);
        while (true) {
            if (stop_ || restart_requested_) return fail(Errc::cancelled, std::string(restart_marker));
            discard_old();
            // Do not run more than a window ahead of the readers.
            if (hi_ < newest_ + o_.window_bytes) break;
            cv_.wait_for(lock, std::chrono::milliseconds(100));
        }
        if (!chunks_.empty() && chunks_.back().bytes.size() < (256u << 10)) {
            auto &b = chunks_.back().bytes;
            b.insert(b.end(), bytes.begin(), bytes.end());
        } else {
            chunks_.push_back(Chunk{hi_, std::vector<std::byte>(bytes.begin(), bytes.end())});
        }
        if (chunks_.size() == 1) lo_ = chunks_.front().offset;
        hi_ += bytes.size();
        cv_.notify_all();
        return success();
    }

    // One pass over a stream that is the disk itself.
    Result<void> pass_plain(const CancelToken &stop) {
        auto check = o_.make_check ? o_.make_check() : nullptr;
        std::uint64_t received = 0;
        auto sink = [&](std::span<const std::byte> bytes) -> Result<void> {
            HSDK_TRYV(o_.cancel.check());
            if (bytes.size() > size_ - received)
                return fail(Errc::remote_error, fmt::format("{}: the stream holds more than the {} bytes announced", o_.name, size_));
            if (check) check->update(bytes);
            received += bytes.size();
            return deliver(bytes);
        };
        HSDK_TRYV(reader_(0, sink, stop));
        if (received != size_)
            return fail_corrupt(fmt::format("{}: the stream ends after {} of its {} bytes (truncated)", o_.name, received, size_));
        if (check) HSDK_TRYV(check->finish());
        return success();
    }

    // One pass over the stream from its first byte.
    Result<void> pass(const CancelToken &stop) {
        if (!o_.tar) return pass_plain(stop);
        auto check = o_.make_check ? o_.make_check() : nullptr;
        Decoder decoder(o_.name);
        TarWalker walker(o_.name, o_.member);
        std::uint64_t member_size = 0;
        auto on_member = [&](std::uint64_t size) -> Result<void> {
            member_size = size;
            std::lock_guard lock(m_);
            if (size_known_ && size != size_)
                return fail(Errc::remote_error, fmt::format("{}: the member's size changed from {} to {} bytes between two reads", display_, size_, size));
            size_ = size;
            size_known_ = true;
            cv_.notify_all();
            return success();
        };
        auto on_data = [&](std::span<const std::byte> d) { return deliver(d); };
        auto sink = [&](std::span<const std::byte> compressed) -> Result<void> {
            {
                std::lock_guard lock(m_);
                if (stop_ || restart_requested_) return fail(Errc::cancelled, std::string(restart_marker));
            }
            HSDK_TRYV(o_.cancel.check());
            if (check) check->update(compressed);
            return decoder.feed(compressed, [&](std::span<const std::byte> plain) { return walker.feed(plain, on_member, on_data); });
        };
        HSDK_TRYV(reader_(0, sink, stop));
        HSDK_TRYV(decoder.finish());
        if (check) HSDK_TRYV(check->finish());
        if (!walker.member_found())
            return fail(Errc::not_found, o_.member.empty() ? fmt::format("{}: the archive holds no file", o_.name)
                                                           : fmt::format("{}: the archive holds no '{}'", o_.name, o_.member));
        if (!walker.member_complete()) {
            std::lock_guard lock(m_);
            return fail_corrupt(fmt::format("{}: the archive ends after {} of the {} bytes of '{}' (truncated)", o_.name, hi_, member_size,
                                            o_.member.empty() ? "its disk" : o_.member));
        }
        return success();
    }

    void run() {
        while (true) {
            CancelToken stop;
            {
                std::lock_guard lock(m_);
                if (stop_) return;
                pass_stop_ = stop;
            }
            auto done = pass(stop);
            std::unique_lock lock(m_);
            if (stop_) return;
            if (!restart_requested_) {
                if (done) finished_ = true;
                else error_ = done.error();
                cv_.notify_all();
                // The pass is over, but a read behind the window may still need the stream again.
                cv_.wait(lock, [&] { return stop_ || restart_requested_; });
                if (stop_) return;
            }
            chunks_.clear();
            lo_ = hi_ = 0;
            finished_ = false;
            error_.reset();
            restart_requested_ = false;
            // The readers that asked for the restart set the pace again.
            newest_ = pending_.empty() ? 0 : *pending_.begin();
            cv_.notify_all();
        }
    }

    StreamReader reader_;
    TarStreamOptions o_;
    std::string display_;
    std::thread producer_;

    mutable std::mutex m_;
    mutable std::condition_variable cv_;
    std::deque<Chunk> chunks_;
    std::uint64_t lo_ = 0, hi_ = 0;  // disk bytes [lo_, hi_) are in chunks_
    std::uint64_t size_ = 0;
    bool size_known_ = false;
    bool finished_ = false;  // the whole stream was read and verified
    std::optional<Error> error_;
    mutable std::multiset<std::uint64_t> pending_;  // offsets readers wait for
    mutable std::uint64_t newest_ = 0;              // the end of the furthest read asked for
    mutable bool restart_requested_ = false;
    mutable CancelToken pass_stop_;  // cancels the transfer of the current pass
    bool stop_ = false;
};

}  // namespace

bool is_tar_stream_name(std::string_view location) {
    std::string_view path = location.substr(0, location.find_first_of("?#"));
    auto ends = [&](std::string_view suffix) {
        if (path.size() < suffix.size()) return false;
        for (std::size_t i = 0; i < suffix.size(); ++i)
            if (std::tolower(static_cast<unsigned char>(path[path.size() - suffix.size() + i])) != suffix[i]) return false;
        return true;
    };
    return ends(".tar.gz") || ends(".tgz") || ends(".tar");
}

StreamReader stream_reader_of(std::shared_ptr<const ByteSource> source, std::size_t chunk_bytes) {
    return [source = std::move(source), chunk_bytes](std::uint64_t offset, const StreamSink &sink, const CancelToken &stop) -> Result<void> {
        std::vector<std::byte> buf(chunk_bytes);
        const std::uint64_t size = source->size();
        for (std::uint64_t at = offset; at < size;) {
            const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - at));
            HSDK_TRYV(stop.check());
            HSDK_TRYV(source->read_exact(at, std::span<std::byte>(buf.data(), n)));
            HSDK_TRYV(sink(std::span<const std::byte>(buf.data(), n)));
            at += n;
        }
        return success();
    };
}

Result<std::shared_ptr<ByteSource>> open_tar_stream_source(StreamReader reader, TarStreamOptions options) {
    if (options.window_bytes < (1u << 20)) options.window_bytes = 1u << 20;
    auto source = std::make_shared<TarStreamSource>(std::move(reader), std::move(options));
    HSDK_TRYV(source->start());
    return std::shared_ptr<ByteSource>(std::move(source));
}

}  // namespace hypersdk::io
