// The VHDX log ([MS-VHDX] 2.3): a circular buffer of entries that record metadata (and possibly
// data) writes not yet applied to the file. A reader must replay the active sequence before
// trusting anything else; we replay it into an in-memory overlay and never touch the file.
#pragma once

#include "format/vhdx/headers.hpp"
#include "format/vhdx/image_file.hpp"

#include <cstdint>
#include <string>

namespace hypersdk::format::vhdx {

struct LogReplay {
    enum class State {
        none,      // LogGuid is zero: nothing to replay
        empty,     // LogGuid is set but no valid sequence of entries carries it
        replayed,  // the active sequence was applied to `overlay`
    };
    State state = State::none;
    std::uint64_t entries = 0;      // entries replayed
    std::uint64_t descriptors = 0;  // data and zero descriptors applied
    std::uint64_t head_sequence = 0;
    Overlay overlay;
    std::uint64_t logical_size = 0;  // file size after replay

    [[nodiscard]] std::string describe() const;
};

// Finds the active sequence (the valid, contiguous sequence whose head has the highest sequence
// number and whose tail it reaches) and applies it. Entries with bad signatures, checksums, lengths
// or descriptors are not valid and are skipped, as the spec asks; a valid sequence that writes into
// the headers or the log itself, or past the file it describes, is corrupt.
Result<LogReplay> replay_log(const io::Source &file, std::uint64_t file_size, const Header &header);

}  // namespace hypersdk::format::vhdx
