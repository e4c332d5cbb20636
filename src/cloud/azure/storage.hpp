// Azure Storage: SharedKey signing of blob requests (account key from AZURE_STORAGE_ACCOUNT /
// AZURE_STORAGE_KEY, as the az CLI reads them), Storage's error answers, and page blobs as
// sparse ByteSources: Get Page Ranges gives the allocation map, only allocated ranges are
// fetched (ranged GETs of at most 4 MiB, several at once, Content-MD5 checked where sent).
#pragma once

#include "io/http.hpp"

#include <hypersdk/byte_source.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hypersdk::cloud::azure {

inline constexpr const char *storage_version = "2021-08-06";

struct StorageKey {
    std::string account;
    std::string key_base64;  // a secret: never logged
};

// The SharedKey headers (x-ms-date, x-ms-version, Authorization) for a request about to be sent
// with `headers`; the key is not a valid base64 string: invalid_argument.
Result<std::vector<std::string>> shared_key_headers(const StorageKey &key, const std::string &method, const std::string &url,
                                                    const std::vector<std::string> &headers);
// The string SharedKey signs, exposed for tests.
std::string shared_key_string_to_sign(const std::string &account, const std::string &method, const std::string &url,
                                      const std::vector<std::string> &headers);

// The storage account a blob URL names: the host's first label (ACCOUNT.blob.core.windows.net)
// or, on an emulator or custom endpoint (an IP address or localhost), the first path segment.
std::string account_of(std::string_view url);
// True when the URL carries a SAS (a sig= parameter).
bool has_sas(std::string_view url);

// `options` with a SharedKey signer when the URL names the account of AZURE_STORAGE_ACCOUNT /
// AZURE_STORAGE_KEY and carries no SAS; unchanged otherwise.
HttpSourceOptions with_storage_auth(const std::string &url, HttpSourceOptions options);

// An Azure Storage error answer (<Error><Code>..</Code><Message>..</Message></Error>) as an
// error naming `what`: AuthenticationFailed (an expired or wrong SAS or key) is auth_failed,
// *NotFound is not_found. SAS signatures never appear in it.
Error storage_error(const io::http::Response &response, const std::string &what);

struct PageRange {
    std::uint64_t start = 0, end = 0;  // [start, end), 512-aligned
    bool cleared = false;              // a ClearRange of a diff: now zeros
};

// Get Page Ranges of the blob at `url`, paged with marker, asked in segments of `segment` bytes
// so that very fragmented blobs answer; `previous_snapshot_url` (a managed disk snapshot's SAS
// URL, x-ms-previous-snapshot-url) or `prevsnapshot` (a blob snapshot time) makes it a diff:
// changed ranges and cleared ranges.
struct PageRangeQuery {
    std::string previous_snapshot_url;
    std::string prevsnapshot;
    std::uint64_t segment = 64ull << 30;
};
Result<std::vector<PageRange>> get_page_ranges(io::http::Client &client, const std::string &url, std::uint64_t size,
                                               const HttpSourceOptions &options, const PageRangeQuery &query = {});

// A URL that must name a page blob (a managed disk snapshot's SAS): probed, then read sparsely;
// unsupported naming the blob type when it is another kind of blob.
Result<std::shared_ptr<ByteSource>> open_required_page_blob(const std::string &url, const HttpSourceOptions &options);

// A page blob (of `size` bytes, as its probe said) as a sparse ByteSource.
Result<std::shared_ptr<ByteSource>> open_page_blob(const std::string &url, std::uint64_t size, const HttpSourceOptions &options);

}  // namespace hypersdk::cloud::azure
