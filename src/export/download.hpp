// A resumable download of one disk stream: bytes go to "<final>.hsdk-partial" and a small JSON
// state file "<final>.hsdk-resume" records how many of them are safely on disk and what they
// belong to. A later run continues from that byte (an HTTP Range request for URL streams); when
// the source cannot skip (a server ignoring Range) the file starts again from zero instead of
// appending. Transient failures (reset, 5xx, timeout) are retried with backoff from the last
// byte received.
#pragma once

#include "io/http.hpp"

#include <hypersdk/provider.hpp>

#include <hypersdk/cancel.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace hypersdk::exporter {

struct DownloadRequest {
    DiskStream *stream = nullptr;
    std::string label;         // the source, for messages (no secrets: URLs redacted)
    std::string final_path;    // where the caller will put the finished file
    nlohmann::json identity;   // what the bytes are; a state file for anything else is ignored
    bool resume = false;       // continue from a matching state file
    io::http::RetryPolicy retry;
    CancelToken cancel;
    // Bytes that arrived (may be called from the downloading thread only); the first call after a
    // restart from zero passes `restarted`.
    std::function<void(std::uint64_t bytes, bool restarted)> on_bytes;
    // Bytes a resumed download already holds (before any new byte arrives).
    std::function<void(std::uint64_t bytes)> on_resumed;
    // Learned from Content-Length / Content-Range.
    std::function<void(std::uint64_t total)> on_total;
    // Streamed mode: the bytes go to `consume`, in order. Without keep_partial there is no partial
    // file and no state (and `resume` does not apply); with it, the bytes are also kept as the
    // usual resumable partial file, and a resumed download first replays what that file holds into
    // `consume`. A dropped connection continues with Range either way; a server that ignores Range
    // makes `restart_consumer` run and the stream start again.
    std::function<Result<void>(std::span<const std::byte>)> consume;
    std::function<Result<void>()> restart_consumer;
    bool keep_partial = false;
    // SHA-1 is always computed (the lease manifest's check); SHA-256 only when a manifest of ours
    // will name the file.
    bool sha256 = true;
};

struct DownloadResult {
    std::string partial_path;  // the finished bytes, not yet renamed (empty in streamed mode)
    std::uint64_t size = 0;
    std::uint64_t received = 0;  // from the network in this run
    std::uint64_t resumed = 0;   // already there from an earlier run
    bool restarted = false;      // the server ignored Range
    std::string sha1, sha256;    // of all `size` bytes
};

std::string partial_path_for(const std::string &final_path);
std::string state_path_for(const std::string &final_path);

// On failure the partial file and its state stay behind (resumable); discard_partial() removes them.
Result<DownloadResult> download_resumable(const DownloadRequest &request);
void discard_partial(const std::string &final_path) noexcept;

}  // namespace hypersdk::exporter
