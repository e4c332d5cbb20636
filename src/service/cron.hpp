// Cron schedules for the daemon's scheduler: the classic five-field syntax, the @ macros and
// "@every <duration>", and the one question a scheduler asks of them - when is the next run?
#pragma once

#include <hypersdk/error.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace hypersdk::service {

// Bit masks rather than value lists: matching a minute is one AND, and two schedules that mean
// the same thing ("0-59" and "*") compare equal.
struct CronSchedule {
    std::uint64_t minutes = 0;        // bit m: minute m (0-59)
    std::uint32_t hours = 0;          // bit h: hour h (0-23)
    std::uint32_t days_of_month = 0;  // bit d: day d (1-31)
    std::uint16_t months = 0;         // bit m: month m (1-12)
    std::uint8_t days_of_week = 0;    // bit d: weekday d (0 = Sunday ... 6; a 7 in the text lands on 0)
    // Written as "*" (or "?"). When both day fields are restricted a day needs to match only one
    // of them (Vixie cron's rule); otherwise both must match.
    bool any_day_of_month = true;
    bool any_day_of_week = true;
    // Non-zero for "@every <duration>": fixed-interval runs, the five fields above are unused.
    std::chrono::nanoseconds every{0};
    std::string text;  // canonical spelling, see describe()

    bool operator==(const CronSchedule &) const = default;
};

// "M H DoM Mon DoW" (names JAN-DEC / SUN-SAT in any case, ranges, lists, steps "*/n", "a-b/n" and
// "a/n" = a-max/n), "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
// "@hourly", or "@every 1h30m" (Go duration syntax, at least 1s). Errors are Errc::invalid_argument
// and name the field and the offending text.
Result<CronSchedule> parse_cron(std::string_view text);

// First firing strictly after `after`, at second 0 of a matching minute; time_point::max() when
// the schedule can never fire (e.g. "0 0 30 2 *"). With utc=false the fields are read as local
// wall-clock time (TZ): a wall time skipped when DST starts fires at the instant the jump ends,
// and a wall time shown twice when DST ends fires only once (the search walks forward along the
// wall clock from `after`, so the repeated hour is not walked twice). For @every the answer is
// after + interval.
std::chrono::system_clock::time_point next_after(const CronSchedule &schedule,
                                                 std::chrono::system_clock::time_point after, bool utc);

// Canonical text: fields separated by single spaces, macros in lower case.
std::string describe(const CronSchedule &schedule);

}  // namespace hypersdk::service
