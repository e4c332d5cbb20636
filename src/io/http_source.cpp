// HTTP(S) byte source. Large reads go straight to one exactly-sized Range request each (the
// conversion pipeline's data reads, several threads at once, each on a reused connection); small
// reads - image metadata, compressed grains - go through a bounded cache of 64 KiB chunks with a
// read-ahead that grows while reads stay sequential. Every request is retried with backoff on
// resets, timeouts and 5xx, and every answer is checked to be exactly the range asked for, so a
// server that ignores Range can never hand the drivers the wrong bytes.
#include "io/http_source.hpp"

#include "cloud/azure/storage.hpp"
#include "io/http.hpp"
#include "io/reference.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <list>
#include <set>
#include <mutex>
#include <unordered_map>

namespace hypersdk::io {
namespace {

constexpr std::uint64_t chunk_size = 64 * 1024;
constexpr std::uint64_t max_readahead_chunks = 16;  // 1 MiB
// Reads this large go straight to one request of their own (the pipeline's data runs).
constexpr std::uint64_t direct_read_size = 1024 * 1024;

// What a source and the neighbours it opens share: options and one client (its connections).
struct Context {
    HttpSourceOptions options;
    std::unique_ptr<http::Client> client;

    // The headers to send now: options.headers, or what refresh_headers gave after a 401.
    std::pair<std::vector<std::string>, unsigned> headers() const {
        std::lock_guard lock(headers_mutex);
        return {current_headers, generation};
    }
    // A 401 on headers of `seen` generation: asks for new ones once (other threads that saw the
    // same 401 meanwhile use those). False when there is nothing to refresh with.
    Result<bool> refresh(unsigned seen) {
        if (!options.refresh_headers) return false;
        std::lock_guard lock(headers_mutex);
        if (generation != seen) return true;
        HSDK_TRY(current_headers, options.refresh_headers());
        ++generation;
        return true;
    }

    mutable std::mutex headers_mutex;
    std::vector<std::string> current_headers;
    unsigned generation = 0;
};

// Runs `request(headers)`; an auth_failed answer gets the headers refreshed and one more try.
template <class F>
auto with_fresh_headers(Context &context, F &&request) -> decltype(request(std::vector<std::string>{})) {
    auto [headers, generation] = context.headers();
    auto r = request(headers);
    if (r || r.error().code != Errc::auth_failed) return r;
    auto refreshed = context.refresh(generation);
    if (!refreshed) return fail(refreshed.error().with_context("renewing the credentials after an HTTP 401"));
    if (!refreshed.value()) return r;
    return request(context.headers().first);
}

Error status_failure(long status, std::string_view url, const HttpSourceOptions &options) {
    const std::string where = http::redact_url(url);
    if (status == 401 || status == 403)
        return Error{Errc::auth_failed, fmt::format("HTTP {} from GET {}: access refused (check the credentials{})", status,
                                                    where, options.sign ? "" : " given with --header")};
    if (status == 404 || status == 410) return Error{Errc::not_found, fmt::format("HTTP {} from GET {}: no such object", status, where)};
    return http::status_error(status, "GET", url);
}

// "bytes A-B/TOTAL" -> (A, B, TOTAL); TOTAL may be "*".
bool parse_content_range(const std::string &text, std::uint64_t &first, std::uint64_t &last, std::optional<std::uint64_t> &total) {
    unsigned long long a = 0, b = 0, t = 0;
    char star = 0;
    if (std::sscanf(text.c_str(), "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
        total = t;
    } else if (std::sscanf(text.c_str(), "bytes %llu-%llu/%c", &a, &b, &star) == 3 && star == '*') {
        total.reset();
    } else {
        return false;
    }
    first = a;
    last = b;
    return b >= a;
}

bool has_user_info(const std::string &url) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) return false;
    const auto host_end = url.find_first_of("/?#", scheme + 3);
    return url.substr(scheme + 3, host_end == std::string::npos ? std::string::npos : host_end - scheme - 3).find('@') !=
           std::string::npos;
}

class HttpSource final : public ByteSource {
public:
    HttpSource(std::shared_ptr<Context> context, std::string url, std::uint64_t size)
        : context_(std::move(context)), url_(std::move(url)), name_(http::redact_url(url_)), size_(size) {}

    // One byte asked for, to learn the size and that Range is honoured.
    static Result<std::uint64_t> probe_size(Context &context, const std::string &url, std::string *blob_type = nullptr) {
        std::optional<std::uint64_t> total;
        std::vector<std::string> headers;
        auto attempt = [&](unsigned) -> Result<void> {
            http::Request request;
            request.url = url;
            request.headers = headers;
            request.headers.push_back("Range: bytes=0-0");
            if (context.options.sign)
                for (auto &h : context.options.sign("GET", url, request.headers)) request.headers.push_back(std::move(h));
            request.max_body = 1;
            auto check = [&](const http::Response &r) -> Result<void> {
                if (r.status == 416) {  // an empty object: nothing satisfies bytes=0-0
                    total = 0;
                    return success();
                }
                if (r.status == 200)
                    return fail(Errc::unsupported,
                                fmt::format("{} ignores Range requests (it answered 200 with the whole object to "
                                            "'Range: bytes=0-0'); images are read from a URL only by ranges",
                                            http::redact_url(url)));
                if (r.status != 206) return fail(status_failure(r.status, url, context.options));
                std::uint64_t first = 0, last = 0;
                if (blob_type != nullptr) *blob_type = r.header("x-ms-blob-type");
                if (!parse_content_range(r.content_range, first, last, total) || first != 0 || !total)
                    return fail(Errc::remote_error, fmt::format("{} answered a Range request without a usable "
                                                                "Content-Range ('{}')",
                                                                http::redact_url(url), r.content_range));
                return success();
            };
            auto sink = [](std::span<const std::byte>) -> Result<void> { return success(); };
            HSDK_TRY(auto response, context.client->stream(request, check, sink));
            (void)response;
            return success();
        };
        HSDK_TRYV(with_fresh_headers(context, [&](std::vector<std::string> h) {
            headers = std::move(h);
            return http::with_retries(policy(context), context.options.cancel, attempt);
        }));
        if (!total) return fail(Errc::remote_error, fmt::format("{} did not tell the object's size", http::redact_url(url)));
        return *total;
    }

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return size_; }
    std::string identity() const override { return url_.substr(0, url_.find('#')); }

    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= size_ || buf.empty()) return std::size_t{0};
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset));
        buf = buf.first(n);
        if (n >= direct_read_size) {
            HSDK_TRYV(fetch(offset, buf));
        } else {
            HSDK_TRYV(read_cached(offset, buf));
        }
        return n;
    }

    Result<std::shared_ptr<ByteSource>> open_reference(const std::string &reference, bool allow_external,
                                                       std::string_view what) const override {
        HSDK_TRY(auto url, resolve_url_reference(url_, reference, allow_external, what));
        HSDK_TRY(auto size, probe_size(*context_, url));
        return std::shared_ptr<ByteSource>(std::make_shared<HttpSource>(context_, std::move(url), size));
    }

private:
    static http::RetryPolicy policy(const Context &context) {
        http::RetryPolicy p;
        p.max_attempts = context.options.max_attempts;
        return p;
    }

    // Exactly [offset, offset + buf.size()) into buf, in one request (retried as a whole).
    Result<void> fetch(std::uint64_t offset, std::span<std::byte> buf) const {
        const std::uint64_t last = offset + buf.size() - 1;
        std::vector<std::string> headers;
        auto attempt = [&](unsigned) -> Result<void> {
            http::Request request;
            request.url = url_;
            request.headers = headers;
            request.headers.push_back(fmt::format("Range: bytes={}-{}", offset, last));
            if (context_->options.sign)
                for (auto &h : context_->options.sign("GET", url_, request.headers)) request.headers.push_back(std::move(h));
            std::size_t got = 0;
            auto check = [&](const http::Response &r) -> Result<void> {
                if (r.status == 200)
                    return fail(Errc::unsupported, fmt::format("{} ignored a Range request (answered 200 to bytes={}-{})",
                                                               name_, offset, last));
                if (r.status != 206) return fail(status_failure(r.status, url_, context_->options));
                std::uint64_t first = 0, end = 0;
                std::optional<std::uint64_t> total;
                if (!parse_content_range(r.content_range, first, end, total) || first != offset || end != last)
                    return fail(Errc::remote_error, fmt::format("{} answered bytes={}-{} with Content-Range '{}'", name_,
                                                                offset, last, r.content_range));
                if (total && *total != size_)
                    return fail(Errc::conflict, fmt::format("{} changed size while being read ({} bytes, now {})", name_,
                                                            size_, *total));
                return success();
            };
            auto sink = [&](std::span<const std::byte> data) -> Result<void> {
                if (data.size() > buf.size() - got)
                    return fail(Errc::remote_error, fmt::format("{} sent more than the {} bytes asked for at {:#x}", name_,
                                                                buf.size(), offset));
                std::memcpy(buf.data() + got, data.data(), data.size());
                got += data.size();
                return success();
            };
            HSDK_TRY(auto response, context_->client->stream(request, check, sink));
            if (response.status != 206) return fail(status_failure(response.status, url_, context_->options));
            if (got != buf.size())
                return fail(Errc::network_error, fmt::format("GET {}: answer cut short ({} of {} bytes at {:#x})", name_,
                                                             got, buf.size(), offset));
            return success();
        };
        return with_fresh_headers(*context_, [&](std::vector<std::string> h) {
            headers = std::move(h);
            return http::with_retries(policy(*context_), context_->options.cancel, attempt);
        });
    }

    using Chunk = std::shared_ptr<const std::vector<std::byte>>;

    // Small reads come from the chunk cache. A missing chunk is fetched by one thread while others
    // needing it wait for it (parallel readers of neighbouring grains would otherwise fetch the
    // same bytes several times); different chunks are fetched in parallel.
    Result<void> read_cached(std::uint64_t offset, std::span<std::byte> buf) const {
        const std::uint64_t first = offset / chunk_size;
        const std::uint64_t last = (offset + buf.size() - 1) / chunk_size;
        std::vector<Chunk> chunks(static_cast<std::size_t>(last - first + 1));
        std::unique_lock lock(mutex_);
        for (;;) {
            bool waiting = false;
            std::optional<std::uint64_t> from, to;
            for (std::uint64_t c = first; c <= last; ++c) {
                auto &slot = chunks[static_cast<std::size_t>(c - first)];
                if (slot) continue;
                if (auto it = cache_.find(c); it != cache_.end()) {
                    lru_.splice(lru_.begin(), lru_, it->second.position);
                    slot = it->second.data;
                } else if (pending_.count(c) != 0) {
                    waiting = true;
                } else if (!to || *to + 1 == c) {  // one contiguous span per request
                    if (!from) from = c;
                    to = c;
                }
            }
            if (from) {
                HSDK_TRYV(fill(lock, *from, *to, first, chunks));
                continue;
            }
            if (!waiting) break;
            fetched_.wait(lock);
        }
        lock.unlock();
        for (std::uint64_t c = first; c <= last; ++c) {
            const auto &chunk = *chunks[static_cast<std::size_t>(c - first)];
            const std::uint64_t chunk_start = c * chunk_size;
            const std::uint64_t from = std::max(offset, chunk_start);
            const std::uint64_t to = std::min(offset + buf.size(), chunk_start + chunk.size());
            if (to <= from) return fail(Errc::internal, fmt::format("cache of {} misses bytes at {:#x}", name_, from));
            std::memcpy(buf.data() + (from - offset), chunk.data() + (from - chunk_start), static_cast<std::size_t>(to - from));
        }
        return success();
    }

    // Fetches chunks from..to, plus read-ahead, with `lock` released meanwhile; the chunks of the
    // caller's range (first..) land in `chunks`.
    Result<void> fill(std::unique_lock<std::mutex> &lock, std::uint64_t from, std::uint64_t to, std::uint64_t first,
                      std::vector<Chunk> &chunks) const {
        // Sequential misses (a stream parser walking compressed grains) fetch further ahead each
        // time; a jump starts over with no read-ahead.
        const std::uint64_t chunks_total = (size_ + chunk_size - 1) / chunk_size;
        readahead_ = from == next_sequential_ ? std::min(max_readahead_chunks, readahead_ * 2 + 1) : 0;
        for (std::uint64_t n = 0; n < readahead_ && to + 1 < chunks_total && cache_.count(to + 1) == 0 && pending_.count(to + 1) == 0; ++n)
            ++to;
        next_sequential_ = to + 1;
        for (std::uint64_t c = from; c <= to; ++c) pending_.insert(c);
        const std::uint64_t from_byte = from * chunk_size;
        const std::uint64_t to_byte = std::min(size_, (to + 1) * chunk_size);
        std::vector<std::byte> data(static_cast<std::size_t>(to_byte - from_byte));
        lock.unlock();
        auto fetched = fetch(from_byte, data);
        lock.lock();
        for (std::uint64_t c = from; c <= to; ++c) pending_.erase(c);
        fetched_.notify_all();
        if (!fetched) return fail(fetched.error());
        for (std::uint64_t c = from; c <= to; ++c) {
            const std::size_t at = static_cast<std::size_t>((c - from) * chunk_size);
            const std::size_t len = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, data.size() - at));
            auto chunk = std::make_shared<const std::vector<std::byte>>(data.begin() + static_cast<std::ptrdiff_t>(at),
                                                                        data.begin() + static_cast<std::ptrdiff_t>(at + len));
            if (c >= first && c - first < chunks.size()) chunks[static_cast<std::size_t>(c - first)] = chunk;
            insert(c, std::move(chunk));
        }
        return success();
    }

    void insert(std::uint64_t index, Chunk chunk) const {  // mutex_ held
        if (auto it = cache_.find(index); it != cache_.end()) {
            lru_.splice(lru_.begin(), lru_, it->second.position);
            return;
        }
        lru_.push_front(index);
        cached_bytes_ += chunk->size();
        cache_.emplace(index, Entry{std::move(chunk), lru_.begin()});
        while (cached_bytes_ > std::max<std::size_t>(context_->options.cache_bytes, chunk_size) && lru_.size() > 1) {
            auto victim = cache_.find(lru_.back());
            cached_bytes_ -= victim->second.data->size();
            cache_.erase(victim);
            lru_.pop_back();
        }
    }

    struct Entry {
        Chunk data;
        std::list<std::uint64_t>::iterator position;
    };

    std::shared_ptr<Context> context_;
    std::string url_;   // as given: may hold credentials or a signature; never printed
    std::string name_;  // redacted
    std::uint64_t size_;
    mutable std::mutex mutex_;  // the cache, the pending set and the read-ahead state
    mutable std::condition_variable fetched_;
    mutable std::set<std::uint64_t> pending_;  // chunks being fetched
    mutable std::unordered_map<std::uint64_t, Entry> cache_;
    mutable std::list<std::uint64_t> lru_;  // most recently used first
    mutable std::size_t cached_bytes_ = 0;
    mutable std::uint64_t next_sequential_ = ~std::uint64_t{0};
    mutable std::uint64_t readahead_ = 0;
};


}  // namespace

Result<std::string> resolve_url_reference(const std::string &url, const std::string &reference, bool allow_external,
                                          std::string_view what) {
    HSDK_TRYV(check_reference(reference, allow_external, what));
    if (is_url(reference)) return reference;  // only reaches here when external references are allowed
    const auto scheme_end = url.find("://");
    const auto path_start = url.find_first_of("/?#", scheme_end + 3);
    const std::string origin = url.substr(0, path_start);
    const auto query_start = url.find_first_of("?#", scheme_end + 3);
    const std::string query = query_start == std::string::npos ? "" : url.substr(query_start);
    std::string path = path_start == std::string::npos || url[path_start] != '/'
                           ? std::string("/")
                           : url.substr(path_start, (query_start == std::string::npos ? url.size() : query_start) - path_start);
    const std::string folder = path.substr(0, path.rfind('/') + 1);
    const std::string joined = reference.front() == '/' ? reference : folder + reference;
    std::string carried = query.substr(0, query.find('#'));
    return origin + http::percent_encode(joined, true) + carried;
}

Result<std::shared_ptr<ByteSource>> open_http_source(const std::string &url, const HttpSourceOptions &options) {
    const bool plain = url.size() >= 7 && std::equal(url.begin(), url.begin() + 7, "http://", [](char a, char b) {
                           return std::tolower(static_cast<unsigned char>(a)) == b;
                       });
    if (plain && !options.insecure && (!options.headers.empty() || has_user_info(url)))
        return fail(Errc::invalid_argument,
                    fmt::format("refusing to send credentials (--header or user:password@) over plain http:// to {}; "
                                "use https://, or --insecure to allow it",
                                http::redact_url(url)));
    for (const auto &h : options.headers)
        if (h.find(':') == std::string::npos || h.find_first_of("\r\n") != std::string::npos)
            return fail(Errc::invalid_argument, "a header must read 'Name: value' on one line");
    auto context = std::make_shared<Context>();
    context->options = options;
    context->current_headers = options.headers;
    http::ClientOptions client;
    client.tls.insecure = options.insecure;
    client.tls.ca_file = options.ca_file;
    client.tls.thumbprint_sha256 = options.thumbprint;
    client.cancel = options.cancel;
    client.connect_timeout = std::chrono::seconds(std::max(1u, options.timeout_seconds));
    client.stall_timeout = std::chrono::seconds(std::max(1u, options.timeout_seconds));
    context->client = std::make_unique<http::Client>(client);
    std::string blob_type;
    HSDK_TRY(auto size, HttpSource::probe_size(*context, url, &blob_type));
    // An Azure page blob says which of its pages hold data: read it sparsely.
    if (blob_type == "PageBlob") return cloud::azure::open_page_blob(url, size, options);
    log(LogLevel::debug, fmt::format("opened {} ({} bytes)", http::redact_url(url), size));
    return std::shared_ptr<ByteSource>(std::make_shared<HttpSource>(std::move(context), url, size));
}

}  // namespace hypersdk::io
