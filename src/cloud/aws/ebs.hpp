// The EBS direct APIs: a completed snapshot's block list (ListSnapshotBlocks), its blocks
// (GetSnapshotBlock, each one's SHA-256 and length checked) and the blocks that differ between two
// snapshots of one lineage (ListChangedBlocks). EbsSnapshotSource makes a snapshot a ByteSource
// every image command reads: listed blocks are fetched, many at once, ahead of the reader;
// unlisted ones are holes.
#pragma once

#include "cloud/aws/client.hpp"

#include <hypersdk/byte_source.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk::cloud::aws {

struct EbsBlock {
    std::uint64_t index = 0;
    std::string token;
    std::chrono::system_clock::time_point expiry = std::chrono::system_clock::time_point::max();
};

struct EbsBlockList {
    std::uint64_t block_size = 0;       // bytes (AWS: 524288)
    std::uint64_t volume_size_gib = 0;
    std::vector<EbsBlock> blocks;       // ascending index
};

struct EbsChangedBlock {
    std::uint64_t index = 0;
    std::string first_token, second_token;  // second empty: the block is not in the second snapshot (zeros)
};

struct EbsChangedList {
    std::uint64_t block_size = 0;
    std::uint64_t volume_size_gib = 0;
    std::vector<EbsChangedBlock> blocks;
};

class Ebs {
public:
    explicit Ebs(Client &client) : client_(client) {}
    // Every page (from `starting_index` on, when given; at most `max_pages`, 0: all). Empty pages
    // that still carry a NextToken are followed.
    Result<EbsBlockList> list_snapshot_blocks(const std::string &snapshot, std::optional<std::uint64_t> starting_index = std::nullopt,
                                              unsigned max_pages = 0);
    Result<EbsChangedList> list_changed_blocks(const std::string &first, const std::string &second);
    // One block, its length and checksum checked against what the service sent.
    Result<std::vector<std::byte>> get_snapshot_block(const std::string &snapshot, std::uint64_t index,
                                                      const std::string &token, TokenBucket *bucket);

private:
    Client &client_;
};

struct EbsSourceOptions {
    unsigned requests_in_flight = 64;  // GetSnapshotBlock calls at once per snapshot
    double rate = 1000;                // per snapshot per second (AWS's documented GetSnapshotBlock limit)
    // Where fetched blocks are also kept ("<path>.blocks", at their offsets, and "<path>.journal",
    // one "index length sha256" line per block), so that a run interrupted and started again
    // reads them from there instead of fetching them twice. Empty: nothing kept.
    std::string cache_path;
};

// ebs://SNAPSHOT_ID as a ByteSource: raw bytes of the volume at the snapshot.
Result<std::shared_ptr<ByteSource>> open_ebs_snapshot(std::shared_ptr<Client> client, const std::string &snapshot,
                                                      const EbsSourceOptions &options);

// The snapshot id of an ebs:// location, or invalid_argument.
Result<std::string> ebs_snapshot_id(std::string_view location);

}  // namespace hypersdk::cloud::aws
