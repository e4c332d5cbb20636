// Seals a finished output file: compressed as a stream, then encrypted (compressing after
// encryption would gain nothing). Export, backup and convert all finish their outputs here.
#pragma once

#include <hypersdk/artifact.hpp>
#include <hypersdk/error.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace hypersdk::io {

// Refuses what cannot work before anything is written: an unknown compression method or level, an
// encryption without the keys or recipients its method needs.
Result<void> check_artifact_options(const CompressionOptions &compression, const EncryptionOptions *encryption);

struct SealedFile {
    std::uint64_t bytes = 0;  // of the file as stored
    std::optional<EncryptionRecord> encryption;
};

// Writes `plain_path` compressed and/or encrypted to `out_path` (at least one of the two must be
// asked for). Atomic: `out_path` appears only complete; an intermediate (compressed, not yet
// encrypted) file lives under a hidden name beside it and is removed whatever happens. The plain
// file is left to the caller.
Result<SealedFile> seal_file(const std::string &plain_path, const std::string &out_path, const CompressionOptions &compression,
                             const EncryptionOptions *encryption, bool overwrite = true);

// The name a stream-compressed output gets: `path` + ".gz", ".zst" or ".lz4" (unless it ends so).
std::string compressed_name(const std::string &path, const CompressionOptions &compression);

}  // namespace hypersdk::io
