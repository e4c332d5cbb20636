// A DiskStream over an HTTP(S) URL: each read_from() is one GET with "Range: bytes=N-". A server
// that ignores Range (200) starts the stream at 0; 404/401/403 become not_found / auth_failed /
// permission_denied. Used for NFC lease URLs and datastore files, and by cloud providers for
// their export objects.
#pragma once

#include "io/http.hpp"

#include <hypersdk/provider.hpp>

#include <memory>
#include <string>

namespace hypersdk::streams {

class HttpDiskStream final : public DiskStream {
public:
    // `client` must outlive the stream (keep_alive may own it).
    HttpDiskStream(io::http::Client &client, std::string url, std::vector<std::string> headers = {},
                   std::shared_ptr<void> keep_alive = nullptr);
    Result<void> read_from(std::uint64_t offset, const StartHandler &on_start, const Sink &sink) override;

private:
    io::http::Client &client_;
    std::string url_;
    std::vector<std::string> headers_;
    std::shared_ptr<void> keep_alive_;
};

// "bytes 100-199/200" -> first byte and total (nullopt total for "*"); false when unreadable.
bool parse_content_range(const std::string &value, std::uint64_t &first, std::optional<std::uint64_t> &total);

}  // namespace hypersdk::streams
