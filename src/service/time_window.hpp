// Daily time windows ("only run backups between 22:00 and 06:00"), on the UTC or local wall clock.
#pragma once

#include <hypersdk/error.hpp>

#include <chrono>
#include <string_view>

namespace hypersdk::service {

// [start, end) in minutes since midnight. end < start wraps past midnight; start == end is the
// whole day.
struct TimeWindow {
    std::chrono::minutes start{0};
    std::chrono::minutes end{0};

    bool operator==(const TimeWindow &) const = default;
};

// "HH:MM-HH:MM" (hour 0-23, one or two digits; minutes two digits; blanks around '-' allowed).
Result<TimeWindow> parse_time_window(std::string_view text);

// Whether the wall clock at `at` (UTC, or local time when utc=false) is inside the window.
bool inside(const TimeWindow &window, std::chrono::system_clock::time_point at, bool utc);

// `now` when inside the window, else the instant the window next opens. A local start time that
// a DST jump skips opens when the jump ends.
std::chrono::system_clock::time_point next_opening(const TimeWindow &window,
                                                   std::chrono::system_clock::time_point now, bool utc);

}  // namespace hypersdk::service
