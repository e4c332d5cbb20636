#include "providers/http_disk_stream.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace hypersdk::streams {

bool parse_content_range(const std::string &v, std::uint64_t &first, std::optional<std::uint64_t> &total) {
    unsigned long long a = 0, b = 0, t = 0;
    if (std::sscanf(v.c_str(), "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
        first = a;
        total = t;
        return true;
    }
    if (std::sscanf(v.c_str(), "bytes %llu-%llu/*", &a, &b) == 2) {
        first = a;
        total.reset();
        return true;
    }
    return false;
}

HttpDiskStream::HttpDiskStream(io::http::Client &client, std::string url, std::vector<std::string> headers,
                               std::shared_ptr<void> keep_alive)
    : client_(client), url_(std::move(url)), headers_(std::move(headers)), keep_alive_(std::move(keep_alive)) {}

Result<void> HttpDiskStream::read_from(std::uint64_t offset, const StartHandler &on_start, const Sink &sink) {
    io::http::Request req;
    req.url = url_;
    req.headers = headers_;
    req.range_from = offset;
    bool empty_tail = false;  // 416 at the stream's end: whatever body comes is an error page
    auto check = [&](const io::http::Response &r) -> Result<void> {
        Start start;
        if (r.status == 206) {
            std::uint64_t first = 0;
            if (!parse_content_range(r.content_range, first, start.total) || first != offset)
                return fail(Errc::remote_error,
                            fmt::format("the server answered a request for bytes {}- with '{}'", offset, r.content_range));
            if (!start.total && r.content_length) start.total = offset + *r.content_length;
            start.offset = offset;
        } else if (r.status == 200) {
            start.offset = 0;  // Range ignored (or not asked for): the body starts at byte 0
            start.total = r.content_length;
        } else if (r.status == 416 && offset > 0) {
            // "bytes */N": nothing from `offset` on because the stream has exactly `offset` bytes.
            unsigned long long n = 0;
            if (std::sscanf(r.content_range.c_str(), "bytes */%llu", &n) != 1 || n != offset)
                return fail(io::http::status_error(r.status, "GET", url_));
            empty_tail = true;
            start.offset = offset;
            start.total = offset;
        } else {
            Error e = io::http::status_error(r.status, "GET", url_);
            if (r.status == 404) e.code = Errc::not_found;
            if (r.status == 401) e.code = Errc::auth_failed;
            if (r.status == 403) e.code = Errc::permission_denied;
            return fail(e);
        }
        return on_start(start);
    };
    auto body = [&](std::span<const std::byte> data) -> Result<void> {
        if (empty_tail) return success();
        return sink(data);
    };
    HSDK_TRY(auto response, client_.stream(req, check, body));
    (void)response;
    return success();
}

}  // namespace hypersdk::streams
