// What a metadata check of an image finds. Each format driver fills one; check_image()
// (<hypersdk/convert.hpp>) runs the driver's check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk {

struct CheckReport {
    std::string format;
    bool clean = true;
    std::uint64_t errors = 0;   // metadata inconsistencies that lose or corrupt data
    std::uint64_t leaks = 0;    // allocated clusters nothing refers to
    std::vector<std::string> messages;  // at most max_messages, then one "... not listed" line
    std::uint64_t allocated_clusters = 0;
    std::uint64_t total_clusters = 0;
    std::optional<std::uint64_t> image_end_offset;

    static constexpr std::size_t max_messages = 200;
    // Counts an error (or leak) and keeps its message while the list is short; a hostile image can
    // have millions of bad entries.
    void add_error(std::string message);
    void add_leak(std::string message);
    // A message that is neither (a note, a warning).
    void add_note(std::string message);
};

}  // namespace hypersdk
