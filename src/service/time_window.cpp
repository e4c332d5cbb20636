#include "service/time_window.hpp"

#include "service/cron.hpp"

#include <ctime>
#include <optional>
#include <string>

namespace hypersdk::service {

namespace time_window_detail {

std::string_view tw_trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool tw_digit(char c) { return c >= '0' && c <= '9'; }

std::optional<std::chrono::minutes> tw_clock(std::string_view s) {
    const std::size_t colon = s.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 2 || s.size() != colon + 3) return std::nullopt;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (i != colon && !tw_digit(s[i])) return std::nullopt;
    const int hour = colon == 1 ? s[0] - '0' : (s[0] - '0') * 10 + (s[1] - '0');
    const int minute = (s[colon + 1] - '0') * 10 + (s[colon + 2] - '0');
    if (hour > 23 || minute > 59) return std::nullopt;
    return std::chrono::minutes{hour * 60 + minute};
}

// Minute of the day shown by the UTC or local wall clock at `at`.
int tw_minute_of_day(std::chrono::system_clock::time_point at, bool utc) {
    const std::int64_t seconds = std::chrono::floor<std::chrono::seconds>(at.time_since_epoch()).count();
    if (!utc) {
        tzset();  // follow TZ changes the way mktime would
        const auto t = static_cast<std::time_t>(seconds);
        std::tm tm{};
        if (localtime_r(&t, &tm)) return tm.tm_hour * 60 + tm.tm_min;
    }
    std::int64_t in_day = seconds % 86400;
    if (in_day < 0) in_day += 86400;
    return static_cast<int>(in_day / 60);
}

}  // namespace time_window_detail

Result<TimeWindow> parse_time_window(std::string_view text) {
    using namespace time_window_detail;
    const auto bad = [&](const std::string &why) {
        return fail(Errc::invalid_argument, "invalid time window \"" + std::string(text) + "\": " + why);
    };
    const std::size_t dash = text.find('-');
    if (dash == std::string_view::npos) return bad("expected HH:MM-HH:MM");
    const std::string_view start_text = tw_trim(text.substr(0, dash));
    const std::string_view end_text = tw_trim(text.substr(dash + 1));
    const auto start = tw_clock(start_text);
    if (!start) return bad("start \"" + std::string(start_text) + "\" is not a time HH:MM (00:00-23:59)");
    const auto end = tw_clock(end_text);
    if (!end) return bad("end \"" + std::string(end_text) + "\" is not a time HH:MM (00:00-23:59)");
    return TimeWindow{*start, *end};
}

bool inside(const TimeWindow &window, std::chrono::system_clock::time_point at, bool utc) {
    const int start = static_cast<int>(window.start.count());
    const int end = static_cast<int>(window.end.count());
    if (start == end) return true;
    const int m = time_window_detail::tw_minute_of_day(at, utc);
    if (start < end) return m >= start && m < end;
    return m >= start || m < end;
}

std::chrono::system_clock::time_point next_opening(const TimeWindow &window,
                                                   std::chrono::system_clock::time_point now, bool utc) {
    if (inside(window, now, utc)) return now;
    // Outside the window the opening is the next "MM HH * * *" instant; the cron code already
    // knows how to walk a local wall clock through DST changes.
    const auto start = static_cast<int>(window.start.count());
    auto opening = parse_cron(std::to_string(start % 60) + " " + std::to_string(start / 60) + " * * *");
    if (!opening) return std::chrono::system_clock::time_point::max();
    return next_after(opening.value(), now, utc);
}

}  // namespace hypersdk::service
