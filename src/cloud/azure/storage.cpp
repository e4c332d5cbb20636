#include "cloud/azure/storage.hpp"

#include "core/base64.hpp"
#include "core/task_pool.hpp"
#include "xml/xml_tree.hpp"
#include "core/env.hpp"

#include <hypersdk/log.hpp>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <future>
#include <map>
#include <thread>

namespace hypersdk::cloud::azure {
namespace {

namespace http = io::http;

constexpr std::uint64_t max_piece = 4u << 20;  // the largest range Storage sends a Content-MD5 for

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    return std::string(s.substr(b, s.find_last_not_of(" \t") - b + 1));
}

std::map<std::string, std::string> header_map(const std::vector<std::string> &headers) {
    std::map<std::string, std::string> out;
    for (const auto &h : headers) {
        const auto colon = h.find(':');
        if (colon == std::string::npos) continue;
        out[lower(trim(std::string_view(h).substr(0, colon)))] = trim(std::string_view(h).substr(colon + 1));
    }
    return out;
}

std::string base64(const unsigned char *data, std::size_t n) { return core::base64_encode(std::as_bytes(std::span(data, n))); }

std::optional<std::string> unbase64(std::string_view text) { return core::base64_decode(text); }

std::string rfc1123_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

struct UrlParts {
    std::string path, query;
};

UrlParts split(std::string_view url) {
    UrlParts p;
    const auto scheme = url.find("://");
    const auto path_start = url.find('/', scheme == std::string_view::npos ? 0 : scheme + 3);
    if (path_start == std::string_view::npos) {
        p.path = "/";
        return p;
    }
    const auto q = url.find('?', path_start);
    p.path = std::string(url.substr(path_start, q == std::string_view::npos ? std::string_view::npos : q - path_start));
    if (q != std::string_view::npos) p.query = std::string(url.substr(q + 1));
    return p;
}

std::string with_param(const std::string &url, const std::string &param) {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
}

using core::env;

bool retryable_status(long status) { return status == 429 || status == 500 || status == 502 || status == 503 || status == 504; }

// Waits before another try: Retry-After when the service sent one, else exponential backoff.
Result<void> wait_before_retry(const http::Response *answer, unsigned attempt, const HttpSourceOptions &options) {
    if (answer != nullptr) {
        const std::string after = answer->header("Retry-After");
        if (!after.empty() && std::all_of(after.begin(), after.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(std::min(60, std::atoi(after.c_str())));
            while (std::chrono::steady_clock::now() < until) {
                HSDK_TRYV(options.cancel.check());
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            return success();
        }
    }
    return http::backoff_sleep(http::RetryPolicy{options.max_attempts, std::chrono::milliseconds(250), std::chrono::milliseconds(8000)},
                               attempt, options.cancel);
}

// One request to Storage with retries on 429, 5xx and transport failures.
Result<http::Response> storage_call(http::Client &client, http::Request request, const HttpSourceOptions &options, const std::string &what,
                                    const http::HeaderCheck *check = nullptr, const http::BodySink *sink = nullptr) {
    request.headers.push_back(std::string("x-ms-version: ") + storage_version);
    const auto base = request.headers;
    for (unsigned attempt = 0;; ++attempt) {
        request.headers = base;
        if (options.sign)
            for (auto &h : options.sign(request.method, request.url, request.headers)) request.headers.push_back(std::move(h));
        auto sent = (check != nullptr && sink != nullptr) ? client.stream(request, *check, *sink) : client.send(request);
        const bool last = attempt + 1 >= std::max(1u, options.max_attempts);
        if (!sent) {
            if (!http::is_transient(sent.error()) || last) return fail(sent.error().with_context(what));
            HSDK_TRYV(wait_before_retry(nullptr, attempt + 1, options));
            continue;
        }
        if (sent.value().status >= 200 && sent.value().status < 300) return sent;
        if (!retryable_status(sent.value().status) || last) return fail(storage_error(sent.value(), what));
        log(LogLevel::debug, fmt::format("{}: HTTP {}; trying again", what, sent.value().status));
        HSDK_TRYV(wait_before_retry(&sent.value(), attempt + 1, options));
    }
}

}  // namespace

std::string shared_key_string_to_sign(const std::string &account, const std::string &method, const std::string &url,
                                      const std::vector<std::string> &headers) {
    const auto h = header_map(headers);
    auto get = [&](const char *name) {
        auto it = h.find(name);
        return it == h.end() ? std::string() : it->second;
    };
    std::string length = get("content-length");
    if (length == "0") length.clear();
    std::string out = method + "\n" + get("content-encoding") + "\n" + get("content-language") + "\n" + length + "\n" + get("content-md5") +
                      "\n" + get("content-type") + "\n" + get("date") + "\n" + get("if-modified-since") + "\n" + get("if-match") + "\n" +
                      get("if-none-match") + "\n" + get("if-unmodified-since") + "\n" + get("range") + "\n";
    for (const auto &[name, value] : h)
        if (name.rfind("x-ms-", 0) == 0) out += name + ":" + value + "\n";
    const UrlParts parts = split(url);
    out += "/" + account + parts.path;
    std::map<std::string, std::vector<std::string>> params;
    std::size_t i = 0;
    while (!parts.query.empty() && i <= parts.query.size()) {
        const auto amp = parts.query.find('&', i);
        const std::string pair = parts.query.substr(i, amp == std::string::npos ? std::string::npos : amp - i);
        if (!pair.empty()) {
            const auto eq = pair.find('=');
            params[lower(http::percent_decode(pair.substr(0, eq)))].push_back(
                eq == std::string::npos ? std::string() : http::percent_decode(pair.substr(eq + 1)));
        }
        if (amp == std::string::npos) break;
        i = amp + 1;
    }
    for (auto &[name, values] : params) {
        std::sort(values.begin(), values.end());
        std::string joined;
        for (const auto &v : values) joined += (joined.empty() ? "" : ",") + v;
        out += "\n" + name + ":" + joined;
    }
    return out;
}

Result<std::vector<std::string>> shared_key_headers(const StorageKey &key, const std::string &method, const std::string &url,
                                                    const std::vector<std::string> &headers) {
    const auto secret = unbase64(key.key_base64);
    if (!secret) return fail(Errc::invalid_argument, fmt::format("the key of storage account '{}' is not base64", key.account));
    std::vector<std::string> added{"x-ms-date: " + rfc1123_now()};
    const auto existing = header_map(headers);
    if (existing.count("x-ms-version") == 0) added.push_back(std::string("x-ms-version: ") + storage_version);
    std::vector<std::string> all = headers;
    all.insert(all.end(), added.begin(), added.end());
    const std::string to_sign = shared_key_string_to_sign(key.account, method, url, all);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret->data(), static_cast<int>(secret->size()), reinterpret_cast<const unsigned char *>(to_sign.data()),
         to_sign.size(), mac, &len);
    added.push_back(fmt::format("Authorization: SharedKey {}:{}", key.account, base64(mac, len)));
    return added;
}

std::string account_of(std::string_view url) {
    const auto scheme = url.find("://");
    const auto host_start = scheme == std::string_view::npos ? 0 : scheme + 3;
    const auto path_start = url.find_first_of("/?", host_start);
    std::string host(url.substr(host_start, path_start == std::string_view::npos ? std::string_view::npos : path_start - host_start));
    if (const auto colon = host.rfind(':'); colon != std::string::npos) host.resize(colon);
    const bool emulator = host == "localhost" || std::all_of(host.begin(), host.end(), [](char c) {
                              return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
                          });
    if (!emulator) return host.substr(0, host.find('.'));
    if (path_start == std::string_view::npos || url[path_start] != '/') return {};
    const auto seg_end = url.find_first_of("/?", path_start + 1);
    return std::string(url.substr(path_start + 1, seg_end == std::string_view::npos ? std::string_view::npos : seg_end - path_start - 1));
}

bool has_sas(std::string_view url) {
    const auto q = url.find('?');
    if (q == std::string_view::npos) return false;
    const std::string query = "&" + std::string(url.substr(q + 1));
    return query.find("&sig=") != std::string::npos;
}

HttpSourceOptions with_storage_auth(const std::string &url, HttpSourceOptions options) {
    if (options.sign || has_sas(url)) return options;
    const std::string account = env("AZURE_STORAGE_ACCOUNT"), key = env("AZURE_STORAGE_KEY");
    if (account.empty() || key.empty() || account_of(url) != account) return options;
    StorageKey k{account, key};
    options.sign = [k](const std::string &method, const std::string &u, const std::vector<std::string> &headers) {
        auto signed_headers = shared_key_headers(k, method, u, headers);
        return signed_headers ? std::move(signed_headers).value() : std::vector<std::string>{};
    };
    return options;
}

Error storage_error(const http::Response &response, const std::string &what) {
    std::string code = response.header("x-ms-error-code"), message;
    if (!response.body.empty() && response.body.find('<') != std::string::npos) {
        xml::Limits limits;
        limits.error_code = Errc::remote_error;
        limits.max_bytes = 1u << 20;
        // Storage answers may start with a byte-order mark.
        const auto start = response.body.find('<');
        if (auto doc = xml::parse(std::string_view(response.body).substr(start), "Azure Storage error", limits)) {
            if (code.empty()) code = doc.value().child_text("Code");
            message = doc.value().child_text("Message");
        }
    }
    // The first line only: later ones may quote what was signed.
    message = message.substr(0, message.find('\n'));
    const std::string said = code.empty() ? fmt::format("HTTP {}", response.status) : fmt::format("{} (HTTP {})", code, response.status);
    std::string text = message.empty() ? fmt::format("{}: {}", what, said) : fmt::format("{}: {}: {}", what, said, message);
    if (code == "AuthenticationFailed" || code == "AuthorizationFailure" || response.status == 401)
        return Error{Errc::auth_failed, text + " (is the SAS expired or the key wrong?)"};
    if (code.find("NotFound") != std::string::npos || response.status == 404) return Error{Errc::not_found, text};
    if (response.status == 403) return Error{Errc::permission_denied, text};
    if (response.status == 400 || response.status == 416) return Error{Errc::invalid_argument, text};
    if (response.status == 409 || response.status == 412) return Error{Errc::conflict, text};
    return Error{Errc::remote_error, text};
}

Result<std::vector<PageRange>> get_page_ranges(http::Client &client, const std::string &url, std::uint64_t size,
                                               const HttpSourceOptions &options, const PageRangeQuery &query) {
    std::vector<PageRange> out;
    const std::string what = fmt::format("Azure Get Page Ranges of {}", http::redact_url(url));
    const std::uint64_t segment = std::max<std::uint64_t>(query.segment, 512);
    for (std::uint64_t from = 0; from < size; from += segment) {
        const std::uint64_t to = std::min(size, from + segment) - 1;
        std::string marker;
        for (;;) {
            std::string u = with_param(url, "comp=pagelist");
            if (!query.prevsnapshot.empty()) u = with_param(u, "prevsnapshot=" + http::percent_encode(query.prevsnapshot, false));
            if (!marker.empty()) u = with_param(u, "marker=" + http::percent_encode(marker, false));
            http::Request r;
            r.url = u;
            r.headers.push_back(fmt::format("x-ms-range: bytes={}-{}", from, to));
            if (!query.previous_snapshot_url.empty()) r.headers.push_back("x-ms-previous-snapshot-url: " + query.previous_snapshot_url);
            HSDK_TRY(auto answer, storage_call(client, r, options, what));
            xml::Limits limits;
            limits.error_code = Errc::remote_error;
            limits.max_bytes = 256u << 20;
            const auto start = answer.body.find('<');
            if (start == std::string::npos) return fail(Errc::remote_error, what + ": the answer is not XML");
            HSDK_TRY(auto doc, xml::parse(std::string_view(answer.body).substr(start), what, limits));
            for (const auto &e : doc.children) {
                if (e.local != "PageRange" && e.local != "ClearRange") continue;
                const std::uint64_t s = std::strtoull(e.child_text("Start").c_str(), nullptr, 10);
                const std::uint64_t end = std::strtoull(e.child_text("End").c_str(), nullptr, 10);
                if (end < s || end >= size)
                    return fail(Errc::remote_error, fmt::format("{}: a range {}-{} outside the {}-byte blob", what, s, end, size));
                out.push_back(PageRange{s, end + 1, e.local == "ClearRange"});
            }
            marker = doc.child_text("NextMarker");
            if (marker.empty()) break;
        }
    }
    std::sort(out.begin(), out.end(), [](const PageRange &a, const PageRange &b) { return a.start < b.start; });
    return out;
}

namespace {

class PageBlobSource final : public ByteSource {
public:
    PageBlobSource(std::string url, std::uint64_t size, HttpSourceOptions options, std::unique_ptr<http::Client> client,
                   std::vector<PageRange> ranges)
        : url_(std::move(url)),
          name_(http::redact_url(url_)),
          size_(size),
          options_(std::move(options)),
          client_(std::move(client)),
          pool_(std::make_unique<core::TaskPool>("page-blob", 8)) {
        for (const auto &r : ranges) {
            if (r.cleared || r.end <= r.start) continue;
            if (!data_.empty() && data_.back().second >= r.start) data_.back().second = std::max(data_.back().second, r.end);
            else data_.emplace_back(r.start, r.end);
        }
    }

    const std::string &name() const noexcept override { return name_; }
    std::uint64_t size() const noexcept override { return size_; }
    std::string identity() const override { return url_.substr(0, url_.find('?')); }
    std::optional<std::uint64_t> allocated_size() const override {
        std::uint64_t n = 0;
        for (const auto &[s, e] : data_) n += e - s;
        return n;
    }

    Result<std::vector<ByteRun>> allocation(std::uint64_t offset, std::uint64_t length) const override {
        std::vector<ByteRun> out;
        if (offset >= size_) return out;
        const std::uint64_t end = offset + std::min(length, size_ - offset);
        std::uint64_t pos = offset;
        for (auto it = first_at_or_after(offset); it != data_.end() && it->first < end; ++it) {
            const std::uint64_t s = std::max(pos, it->first), e = std::min(end, it->second);
            if (s > pos) out.push_back(ByteRun{pos, s - pos, false});
            if (e > s) out.push_back(ByteRun{s, e - s, true});
            pos = std::max(pos, e);
        }
        if (end > pos) out.push_back(ByteRun{pos, end - pos, false});
        return out;
    }

    Result<std::size_t> read_some(std::uint64_t offset, std::span<std::byte> buf) const override {
        if (offset >= size_ || buf.empty()) return std::size_t{0};
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size_ - offset));
        std::memset(buf.data(), 0, n);
        // The allocated parts, in pieces Storage vouches for with an MD5, several at once.
        std::vector<std::pair<std::uint64_t, std::uint64_t>> pieces;
        for (auto it = first_at_or_after(offset); it != data_.end() && it->first < offset + n; ++it) {
            const std::uint64_t s = std::max(offset, it->first), e = std::min(offset + n, it->second);
            for (std::uint64_t p = s; p < e; p += max_piece) pieces.emplace_back(p, std::min(e, p + max_piece));
        }
        if (pieces.size() == 1) {
            HSDK_TRYV(fetch(pieces[0].first, buf.subspan(static_cast<std::size_t>(pieces[0].first - offset),
                                                         static_cast<std::size_t>(pieces[0].second - pieces[0].first))));
            return n;
        }
        std::vector<std::future<Result<void>>> pending;
        for (const auto &[s, e] : pieces) {
            auto part = buf.subspan(static_cast<std::size_t>(s - offset), static_cast<std::size_t>(e - s));
            pending.push_back(pool_->submit([this, s = s, part] { return fetch(s, part); }));
        }
        std::optional<Error> first_error;
        for (auto &f : pending) {
            auto r = f.get();
            if (!r && !first_error) first_error = r.error();
        }
        if (first_error) return fail(*first_error);
        return n;
    }

private:
    std::vector<std::pair<std::uint64_t, std::uint64_t>>::const_iterator first_at_or_after(std::uint64_t offset) const {
        auto it = std::upper_bound(data_.begin(), data_.end(), offset, [](std::uint64_t o, const auto &r) { return o < r.second; });
        return it;
    }

    Result<void> fetch(std::uint64_t offset, std::span<std::byte> out) const {
        const std::string what = fmt::format("GET {} bytes {}-{}", name_, offset, offset + out.size() - 1);
        Error last;
        for (unsigned attempt = 0; attempt < 3; ++attempt) {
            http::Request r;
            r.url = url_;
            r.headers.push_back(fmt::format("Range: bytes={}-{}", offset, offset + out.size() - 1));
            if (out.size() <= max_piece) r.headers.push_back("x-ms-range-get-content-md5: true");
            std::size_t got = 0;
            http::HeaderCheck check = [](const http::Response &) -> Result<void> { return success(); };
            http::BodySink sink = [&](std::span<const std::byte> data) -> Result<void> {
                if (data.size() > out.size() - got) return fail(Errc::remote_error, what + ": more bytes than asked for");
                std::memcpy(out.data() + got, data.data(), data.size());
                got += data.size();
                return success();
            };
            HSDK_TRY(auto answer, storage_call(*client_, r, options_, what, &check, &sink));
            if (answer.status != 206) return fail(Errc::remote_error, fmt::format("{}: HTTP {} instead of 206", what, answer.status));
            if (got != out.size()) {
                last = Error{Errc::network_error, fmt::format("{}: {} of {} bytes arrived", what, got, out.size())};
                continue;
            }
            if (const std::string md5 = answer.header("Content-MD5"); !md5.empty()) {
                unsigned char digest[EVP_MAX_MD_SIZE];
                unsigned int len = 0;
                EVP_Digest(out.data(), out.size(), digest, &len, EVP_md5(), nullptr);
                if (base64(digest, len) != md5) {
                    last = Error{Errc::checksum_mismatch, fmt::format("{}: MD5 {} but the service says {}", what, base64(digest, len), md5)};
                    continue;
                }
            }
            return success();
        }
        return fail(last);
    }

    std::string url_, name_;
    std::uint64_t size_;
    HttpSourceOptions options_;
    std::unique_ptr<http::Client> client_;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> data_;  // [start, end) of allocated pages, ascending
    std::unique_ptr<core::TaskPool> pool_;
};

}  // namespace

namespace {

std::unique_ptr<http::Client> page_blob_client(const HttpSourceOptions &options) {
    http::ClientOptions o;
    o.tls.insecure = options.insecure;
    o.tls.ca_file = options.ca_file;
    o.tls.thumbprint_sha256 = options.thumbprint;
    o.cancel = options.cancel;
    o.connect_timeout = std::chrono::seconds(std::max(1u, options.timeout_seconds));
    o.stall_timeout = std::chrono::seconds(std::max(1u, options.timeout_seconds));
    return std::make_unique<http::Client>(o);
}

// The source over `client` (the one that probed the blob, so its connection is reused).
Result<std::shared_ptr<ByteSource>> page_blob_over(std::unique_ptr<http::Client> client, const std::string &url, std::uint64_t size,
                                                   const HttpSourceOptions &options) {
    HSDK_TRY(auto ranges, get_page_ranges(*client, url, size, options));
    std::uint64_t allocated = 0;
    for (const auto &r : ranges) allocated += r.end - r.start;
    log(LogLevel::debug, fmt::format("{}: page blob of {} bytes, {} in {} page range(s)", http::redact_url(url), size, allocated, ranges.size()));
    return std::shared_ptr<ByteSource>(std::make_shared<PageBlobSource>(url, size, options, std::move(client), std::move(ranges)));
}

}  // namespace

Result<std::shared_ptr<ByteSource>> open_required_page_blob(const std::string &url, const HttpSourceOptions &options) {
    auto client = page_blob_client(options);
    http::Request r;
    r.url = url;
    r.headers.push_back("Range: bytes=0-0");
    r.max_body = 16;
    const std::string what = "probing " + http::redact_url(url);
    HSDK_TRY(auto answer, storage_call(*client, r, options, what));
    const std::string type = answer.header("x-ms-blob-type");
    if (type != "PageBlob")
        return fail(Errc::unsupported, fmt::format("unsupported: {} is {}, not a page blob (a managed disk's snapshot is a page "
                                                   "blob holding a fixed VHD)",
                                                   http::redact_url(url), type.empty() ? "not a blob" : "a " + type));
    const auto slash = answer.content_range.rfind('/');
    const std::uint64_t size = slash == std::string::npos ? 0 : std::strtoull(answer.content_range.c_str() + slash + 1, nullptr, 10);
    if (size == 0) return fail(Errc::remote_error, fmt::format("{}: no usable Content-Range ('{}')", what, answer.content_range));
    return page_blob_over(std::move(client), url, size, options);
}

Result<std::shared_ptr<ByteSource>> open_page_blob(const std::string &url, std::uint64_t size, const HttpSourceOptions &options) {
    return page_blob_over(page_blob_client(options), url, size, options);
}

}  // namespace hypersdk::cloud::azure
