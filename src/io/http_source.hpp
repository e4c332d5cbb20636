// An object behind an http(s) URL as a ByteSource, read with Range requests.
#pragma once

#include <hypersdk/byte_source.hpp>

#include <memory>
#include <string>

namespace hypersdk::io {

// Learns the size with a one-byte Range request; a server that ignores Range is refused before it
// sends the object. Credentials (headers, user:password@) over plain http need `insecure`.
Result<std::shared_ptr<ByteSource>> open_http_source(const std::string &url, const HttpSourceOptions &options);

// Where `reference` (named by the object at `url`) lives: inside the URL's folder unless
// allow_external; the query (a signature) carries over. Percent-encodes what a URL path cannot hold.
Result<std::string> resolve_url_reference(const std::string &url, const std::string &reference, bool allow_external,
                                          std::string_view what);

}  // namespace hypersdk::io
