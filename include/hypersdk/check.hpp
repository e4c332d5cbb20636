// What a metadata check of an image finds. Each format driver fills one; check_image()
// (<hypersdk/convert.hpp>) runs the driver's check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hypersdk {

// The counts mean what they mean in qemu-img check: corruptions lose or corrupt data, leaks only
// waste space, check errors are places the check itself could not examine.
struct CheckReport {
    std::string format;
    bool clean = true;               // no corruptions, leaks or check errors
    std::uint64_t corruptions = 0;   // metadata inconsistencies that lose or corrupt data
    std::uint64_t leaks = 0;         // allocated clusters nothing refers to
    std::uint64_t check_errors = 0;  // metadata the check could not read or interpret
    std::vector<std::string> messages;  // at most max_messages, then one "... not listed" line
    std::uint64_t allocated_clusters = 0;
    std::uint64_t total_clusters = 0;
    std::optional<std::uint64_t> image_end_offset;

    static constexpr std::size_t max_messages = 200;
    // Counts a corruption (or leak) and keeps its message while the list is short; a hostile image
    // can have millions of bad entries.
    void add_corruption(std::string message);
    void add_leak(std::string message);
    // A message that is neither (a note, a warning).
    void add_note(std::string message);
};

}  // namespace hypersdk
