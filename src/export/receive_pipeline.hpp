// The receiving side of a download, off the network thread: received bytes are gathered into large
// aligned blocks, and each full block is written through the write-behind (O_DIRECT, several
// writes in flight) and hashed - SHA-1 and SHA-256, each in order on its own lane of the worker
// pool - while the network fills the next block. The receiving thread only copies bytes; it waits
// only when every block is still busy (the bound on memory). Without it, one export made 28,711
// 16 KiB pwrite calls and hashed twice on the thread that receives.
#pragma once

#include "convert/unit.hpp"
#include "io/file.hpp"
#include "io/write_behind.hpp"

#include <hypersdk/hash.hpp>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace hypersdk::exporter {

struct ReceivePipelineOptions {
    io::File *file = nullptr;  // where the bytes go; null: hashed only (a streamed conversion takes them)
    bool sha256 = true;        // SHA-1 always (the lease manifest's check); SHA-256 for our .mf
    // 16 MiB in all: 1-4 MiB blocks and 4-8 of them measured the same; fresh memory is not free
    // (every page touched the first time costs a fault).
    std::size_t block_bytes = 2u << 20;
    std::size_t blocks = 8;  // in flight at most: blocks * block_bytes of memory
};

class ReceivePipeline {
public:
    explicit ReceivePipeline(ReceivePipelineOptions options);
    ~ReceivePipeline();  // waits for whatever is still in flight
    ReceivePipeline(const ReceivePipeline &) = delete;
    ReceivePipeline &operator=(const ReceivePipeline &) = delete;

    // Bytes already in the file before `offset` (a resumed download), hashed here on the calling
    // thread; call before the first append(), in order.
    void absorb_existing(std::span<const std::byte> data);
    // The file position the next appended byte goes to (after absorb_existing: where they ended).
    void start_at(std::uint64_t offset);
    // Takes bytes in order (copied; the caller's buffer is free on return). A failed write of an
    // earlier block is reported here or by settle().
    Result<void> append(std::span<const std::byte> data);
    // Waits until the blocks handed on so far are written (not the one still filling; hashes
    // may still run) and returns the offset they reach: what an fsync now makes durable.
    Result<std::uint64_t> written_through();
    // Hands the partial block on and waits until every byte appended so far is written and
    // hashed: the file then holds them (fsync is the caller's) and the digests cover them.
    // Returns the offset reached.
    Result<std::uint64_t> settle();
    // Forget everything (a server that ignored Range: the bytes start again at 0): waits, resets
    // the digests, continues at offset 0. The caller truncates the file.
    Result<void> restart();

    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
    // After settle(): the digests of every byte since the start (existing ones included).
    std::string sha1_hex();
    std::string sha256_hex();

private:
    struct Block {
        std::unique_ptr<pipeline::AlignedBuffer> buffer;
        std::size_t used = 0;
        std::uint64_t file_offset = 0;
        std::uint64_t seq = 0;           // dispatch order, from 1; 0: free
        std::uint64_t write_ticket = 0;  // the write-behind's ticket of its write (0: none queued)
    };
    class Lane;
    Result<void> dispatch();                   // hands the current block on, moves to the next
    Result<void> wait_reusable(Block &block);  // its write and hashes are done
    Result<void> wait_all();

    ReceivePipelineOptions options_;
    std::unique_ptr<io::WriteBehind> writes_;
    std::vector<Block> ring_;
    std::size_t current_ = 0;
    std::uint64_t offset_ = 0;
    std::uint64_t dispatched_ = 0;
    std::uint64_t dispatched_end_ = 0;  // file offset the blocks handed on reach
    std::vector<std::unique_ptr<Lane>> lanes_;  // [0] SHA-1, [1] SHA-256 when asked
    std::optional<Error> failed_;               // a write failed: no later offset is vouched for
};

}  // namespace hypersdk::exporter
