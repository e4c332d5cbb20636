// A disk inside a tar stream, gzip-compressed or not (the disk.raw of a Compute Engine image
// export, a .tar.gz a user has), read as a byte source while the stream arrives: nothing of the
// archive or the disk is stored on the way. Reads move forward through a bounded window; a read
// behind the window starts the stream again from its beginning (correct, slow: said in the log).
#pragma once

#include <hypersdk/byte_source.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace hypersdk::io {

// Receives the stored object's bytes in order. A failure stops the stream and is returned.
using StreamSink = std::function<Result<void>(std::span<const std::byte>)>;
// Hands the stored object's bytes from `offset` on to `sink` until the object ends. Transient
// failures are the reader's to retry (resuming where it broke); an error returned is final, and
// so is a failure of the sink. `stop` is cancelled when the transfer is no longer wanted.
using StreamReader = std::function<Result<void>(std::uint64_t offset, const StreamSink &sink, const CancelToken &stop)>;

// Watches the stored bytes of one pass over the stream (a checksum the platform vouches for):
// finish() decides, before the last byte of the disk is handed out, whether they were right.
class StreamCheck {
public:
    virtual ~StreamCheck() = default;
    virtual void update(std::span<const std::byte> stored) = 0;
    virtual Result<void> finish() = 0;
};

struct TarStreamOptions {
    std::string name;                    // the archive, for messages (gs://b/image.tar.gz)
    std::string member = "disk.raw";     // the member holding the disk; empty: the first regular file
    std::size_t window_bytes = 64u << 20;  // disk bytes kept ahead of and behind the newest read
    CancelToken cancel;
    // false: the stream is the disk itself (a raw Glance image), `size` bytes long.
    bool tar = true;
    std::uint64_t size = 0;
    // A fresh check for each pass over the stream (none when not set).
    std::function<std::unique_ptr<StreamCheck>()> make_check;
};

// Opens the stream and reads up to the member's header (its size is the source's size). The
// gzip checksum and length (and the options' check) are verified at the end of the stream: the
// member's last byte is held back until they are, so a reader of the whole disk fails on a
// corrupt archive. Without tar, the stream is the disk and is read the same way.
Result<std::shared_ptr<ByteSource>> open_tar_stream_source(StreamReader reader, TarStreamOptions options);

// Reads a byte source front to back as a stream (a local .tar.gz, an http(s) object).
StreamReader stream_reader_of(std::shared_ptr<const ByteSource> source, std::size_t chunk_bytes = 4u << 20);

// True for names a tar stream source opens: *.tar.gz, *.tgz, *.tar (query and fragment ignored).
bool is_tar_stream_name(std::string_view location);

}  // namespace hypersdk::io
