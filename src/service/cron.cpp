#include "service/cron.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <ctime>
#include <limits>
#include <optional>
#include <vector>

namespace hypersdk::service {

// Named, not anonymous: the library is built in unity batches and these must not meet a
// same-named helper from another file.
namespace cron_detail {

using CronClock = std::chrono::system_clock;

constexpr int kMinutesPerDay = 24 * 60;
constexpr std::int64_t kSecondsPerDay = 86400;

struct FieldSpec {
    const char *name;
    int min;
    int max;       // largest value accepted in the text
    int star_max;  // upper end of "*" and of "a/n" (day-of-week: 6, so 7 is not a second Sunday)
    const std::array<const char *, 12> *names;  // nullptr: numbers only
    int name_base;                              // value of names[0]
};

constexpr std::array<const char *, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                      "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char *, 12> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
                                                    nullptr, nullptr, nullptr, nullptr, nullptr};

constexpr std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, 59, nullptr, 0},
    {"hour", 0, 23, 23, nullptr, 0},
    {"day-of-month", 1, 31, 31, nullptr, 0},
    {"month", 1, 12, 12, &kMonthNames, 1},
    {"day-of-week", 0, 7, 6, &kDayNames, 0},
}};

Error cron_error(std::string_view whole, const std::string &detail) {
    return Error{Errc::invalid_argument, "invalid cron expression \"" + std::string(whole) + "\": " + detail};
}

std::string cron_upper(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

std::string cron_lower(std::string_view s) {
    std::string out(s);
    for (char &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool cron_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<std::string_view> cron_split_ws(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && cron_is_space(s[i])) ++i;
        const std::size_t begin = i;
        while (i < s.size() && !cron_is_space(s[i])) ++i;
        if (i > begin) out.push_back(s.substr(begin, i - begin));
    }
    return out;
}

// Digits only, and few enough of them that the value cannot overflow an int.
std::optional<int> cron_digits(std::string_view s) {
    if (s.empty() || s.size() > 9) return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

bool cron_all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<int> cron_value(const FieldSpec &f, std::string_view token, std::string_view whole) {
    if (cron_all_digits(token)) {
        const auto v = cron_digits(token);
        if (!v || *v < f.min || *v > f.max)
            return fail(cron_error(whole, std::string(f.name) + " " + std::string(token) + " out of range " +
                                              std::to_string(f.min) + "-" + std::to_string(f.max)));
        return *v;
    }
    if (f.names) {
        const std::string up = cron_upper(token);
        for (std::size_t i = 0; i < f.names->size(); ++i)
            if ((*f.names)[i] && up == (*f.names)[i]) return f.name_base + static_cast<int>(i);
        return fail(cron_error(whole, std::string(f.name) + " \"" + std::string(token) + "\" is not a number or " +
                                          (f.names == &kMonthNames ? "month name (JAN-DEC)" : "day name (SUN-SAT)")));
    }
    return fail(cron_error(whole, std::string(f.name) + " \"" + std::string(token) + "\" is not a number"));
}

struct ParsedField {
    std::uint64_t mask = 0;
    bool any = false;  // written as "*" / "?" (with no step beyond 1)
};

Result<ParsedField> cron_field(const FieldSpec &f, bool day_field, std::string_view text, std::string_view whole) {
    ParsedField out;
    std::size_t items = 0;
    bool only_star = true;
    std::size_t pos = 0;
    while (true) {
        const std::size_t comma = text.find(',', pos);
        const std::string_view item = text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        ++items;
        if (item.empty())
            return fail(cron_error(whole, std::string(f.name) + " field \"" + std::string(text) + "\" has an empty list item"));

        std::string_view range = item;
        int step = 1;
        bool has_step = false;
        if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
            range = item.substr(0, slash);
            const std::string_view step_text = item.substr(slash + 1);
            const auto s = cron_digits(step_text);
            if (!s)
                return fail(cron_error(whole, std::string(f.name) + " step \"" + std::string(step_text) + "\" in \"" +
                                                  std::string(item) + "\" is not a number"));
            if (*s == 0)
                return fail(cron_error(whole, std::string(f.name) + " step 0 in \"" + std::string(item) +
                                                  "\" must be at least 1"));
            step = *s;
            has_step = true;
            if (range.empty())
                return fail(cron_error(whole, std::string(f.name) + " step \"" + std::string(item) + "\" has no range before the /"));
        }

        int lo = 0;
        int hi = 0;
        const bool star = range == "*" || (day_field && range == "?");
        if (star) {
            lo = f.min;
            hi = f.star_max;
        } else {
            only_star = false;
            if (const std::size_t dash = range.find('-'); dash != std::string_view::npos) {
                HSDK_TRY(lo, cron_value(f, range.substr(0, dash), whole));
                HSDK_TRY(hi, cron_value(f, range.substr(dash + 1), whole));
                if (lo > hi)
                    return fail(cron_error(whole, std::string(f.name) + " range \"" + std::string(range) +
                                                      "\" runs backwards"));
            } else {
                HSDK_TRY(lo, cron_value(f, range, whole));
                // "a/n" is shorthand for "a-max/n"; a bare "a" is just a.
                hi = has_step ? std::max(lo, f.star_max) : lo;
            }
        }
        if (star && step != 1) only_star = false;
        for (int v = lo; v <= hi; v += step) out.mask |= std::uint64_t{1} << v;

        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    out.any = only_star && items == 1;
    return out;
}

// Go's time.ParseDuration grammar without the sign: one or more <decimal><unit>, units ns us µs
// ms s m h. Returns nullopt with `why` set on failure.
std::optional<std::chrono::nanoseconds> cron_go_duration(std::string_view s, std::string &why) {
    using Rep = std::int64_t;
    constexpr Rep kMax = std::numeric_limits<Rep>::max();
    if (s.empty()) {
        why = "@every needs a duration such as 90s, 5m or 1h30m";
        return std::nullopt;
    }
    if (s == "0") return std::chrono::nanoseconds{0};
    Rep total = 0;
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t int_begin = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        const std::string_view int_part = s.substr(int_begin, i - int_begin);
        std::string_view frac_part;
        if (i < s.size() && s[i] == '.') {
            const std::size_t frac_begin = ++i;
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
            frac_part = s.substr(frac_begin, i - frac_begin);
        }
        if (int_part.empty() && frac_part.empty()) {
            why = "invalid duration \"" + std::string(s) + "\"";
            return std::nullopt;
        }
        const std::size_t unit_begin = i;
        while (i < s.size() && !(s[i] >= '0' && s[i] <= '9') && s[i] != '.') ++i;
        const std::string_view unit = s.substr(unit_begin, i - unit_begin);
        Rep scale = 0;
        if (unit == "ns") scale = 1;
        else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") scale = 1'000;
        else if (unit == "ms") scale = 1'000'000;
        else if (unit == "s") scale = 1'000'000'000;
        else if (unit == "m") scale = 60'000'000'000;
        else if (unit == "h") scale = 3'600'000'000'000;
        else {
            why = unit.empty() ? "missing unit in duration \"" + std::string(s) + "\""
                               : "unknown unit \"" + std::string(unit) + "\" in duration \"" + std::string(s) + "\"";
            return std::nullopt;
        }
        Rep whole = 0;
        for (char c : int_part) {
            if (whole > (kMax - (c - '0')) / 10) {
                why = "duration \"" + std::string(s) + "\" is too long";
                return std::nullopt;
            }
            whole = whole * 10 + (c - '0');
        }
        if (whole > kMax / scale) {
            why = "duration \"" + std::string(s) + "\" is too long";
            return std::nullopt;
        }
        Rep part = whole * scale;
        // Sub-nanosecond precision is meaningless here, so a double is exact enough for the fraction.
        if (!frac_part.empty()) {
            double frac = 0;
            double place = 0.1;
            for (char c : frac_part) {
                frac += (c - '0') * place;
                place /= 10;
            }
            const auto extra = static_cast<Rep>(std::floor(frac * static_cast<double>(scale)));
            if (part > kMax - extra) {
                why = "duration \"" + std::string(s) + "\" is too long";
                return std::nullopt;
            }
            part += extra;
        }
        if (total > kMax - part) {
            why = "duration \"" + std::string(s) + "\" is too long";
            return std::nullopt;
        }
        total += part;
    }
    return std::chrono::nanoseconds{total};
}

Result<CronSchedule> cron_fields(std::string_view whole, const std::vector<std::string_view> &fields) {
    if (fields.size() != kFields.size())
        return fail(cron_error(whole, "expected 5 fields (minute hour day-of-month month day-of-week), found " +
                                          std::to_string(fields.size())));
    CronSchedule out;
    std::array<ParsedField, 5> parsed;
    for (std::size_t i = 0; i < kFields.size(); ++i) {
        HSDK_TRY(parsed[i], cron_field(kFields[i], i == 2 || i == 4, fields[i], whole));
    }
    out.minutes = parsed[0].mask;
    out.hours = static_cast<std::uint32_t>(parsed[1].mask);
    out.days_of_month = static_cast<std::uint32_t>(parsed[2].mask);
    out.months = static_cast<std::uint16_t>(parsed[3].mask);
    std::uint64_t dow = parsed[4].mask;
    if (dow & (std::uint64_t{1} << 7)) dow = (dow & 0x7f) | 1;
    out.days_of_week = static_cast<std::uint8_t>(dow);
    out.any_day_of_month = parsed[2].any;
    out.any_day_of_week = parsed[4].any;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i) out.text += ' ';
        out.text += fields[i];
    }
    return out;
}

// --- calendar arithmetic on "civil minutes": minutes since 1970-01-01 00:00 of a wall clock
// that knows no time zone. UTC and local schedules share it; only the mapping to instants differs.

std::int64_t cron_floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}

std::chrono::year_month_day cron_ymd(std::int64_t day) {
    return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{day}}};
}

std::int64_t cron_day_number(std::chrono::year_month_day ymd) {
    return std::chrono::sys_days{ymd}.time_since_epoch().count();
}

unsigned cron_last_day(int month) {
    constexpr std::array<unsigned, 12> kDays = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return kDays[static_cast<std::size_t>(month - 1)];
}

bool cron_day_matches(const CronSchedule &s, std::chrono::year_month_day ymd) {
    const bool dom = (s.days_of_month >> static_cast<unsigned>(ymd.day())) & 1u;
    const unsigned wd = std::chrono::weekday{std::chrono::sys_days{ymd}}.c_encoding();
    const bool dow = (s.days_of_week >> wd) & 1u;
    if (s.any_day_of_month || s.any_day_of_week) return dom && dow;
    return dom || dow;
}

// True when no calendar day can ever match: only possible when day-of-month alone decides and
// every listed month is too short for every listed day ("30 2", "31 4,6").
bool cron_never_fires(const CronSchedule &s) {
    if ((s.minutes & ((std::uint64_t{1} << 60) - 1)) == 0 || (s.hours & 0xffffffu) == 0 || (s.months & 0x1ffeu) == 0)
        return true;
    const bool dom_ok = (s.days_of_month & 0xfffffffeu) != 0;
    const bool dow_ok = (s.days_of_week & 0x7fu) != 0;
    if (s.any_day_of_month || s.any_day_of_week) {
        if (!dom_ok || !dow_ok) return true;
    } else if (!dom_ok && !dow_ok) {
        return true;
    }
    if (!s.any_day_of_week && !s.any_day_of_month) return false;  // either-rule: some weekday fits every month
    if (!s.any_day_of_week) return false;                          // weekday alone decides: fits every month
    for (int m = 1; m <= 12; ++m) {
        if (!((s.months >> m) & 1u)) continue;
        const std::uint32_t fits = static_cast<std::uint32_t>((std::uint64_t{2} << cron_last_day(m)) - 2);
        if (s.days_of_month & fits) return false;
    }
    return true;
}

// First matching civil minute >= from, or nullopt if none within the search horizon (which is
// far longer than the longest real gap, 8 years between two Feb 29ths around 2100).
std::optional<std::int64_t> cron_next_civil(const CronSchedule &s, std::int64_t from) {
    std::int64_t day = cron_floor_div(from, kMinutesPerDay);
    int minute_of_day = static_cast<int>(from - day * kMinutesPerDay);
    const std::int64_t last_day = day + 401 * 366;
    while (day <= last_day) {
        const auto ymd = cron_ymd(day);
        const unsigned month = static_cast<unsigned>(ymd.month());
        if (!((s.months >> month) & 1u)) {
            const auto next_month = std::chrono::year_month{ymd.year(), ymd.month()} + std::chrono::months{1};
            day = cron_day_number(next_month / std::chrono::day{1});
            minute_of_day = 0;
            continue;
        }
        if (cron_day_matches(s, ymd)) {
            for (int h = minute_of_day / 60; h < 24; ++h) {
                if (!((s.hours >> h) & 1u)) continue;
                const int first = h == minute_of_day / 60 ? minute_of_day % 60 : 0;
                const std::uint64_t left = (s.minutes & ((std::uint64_t{1} << 60) - 1)) >> first;
                if (left) return day * kMinutesPerDay + h * 60 + first + std::countr_zero(left);
            }
        }
        ++day;
        minute_of_day = 0;
    }
    return std::nullopt;
}

// Seconds east of UTC in force at instant t; 0 when the C library cannot say.
long cron_utc_offset(std::time_t t) {
    std::tm tm{};
    if (!localtime_r(&t, &tm)) return 0;
    return tm.tm_gmtoff;
}

std::optional<std::int64_t> cron_local_civil_minute(std::int64_t seconds) {
    const auto t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    if (!localtime_r(&t, &tm)) return std::nullopt;
    const std::chrono::year_month_day ymd{std::chrono::year{tm.tm_year + 1900},
                                          std::chrono::month{static_cast<unsigned>(tm.tm_mon + 1)},
                                          std::chrono::day{static_cast<unsigned>(tm.tm_mday)}};
    return cron_day_number(ymd) * kMinutesPerDay + tm.tm_hour * 60 + tm.tm_min;
}

enum class Resolve { found, too_early };

// Maps a local wall-clock minute to the earliest instant later than `after_s` showing it. A wall
// time inside a DST gap maps to the end of the gap; one shown twice (fall back) has two
// candidates. No mktime: its choice for ambiguous or missing times differs between C libraries.
Resolve cron_resolve_local(std::int64_t civil_minute, std::int64_t after_s, std::int64_t &out) {
    const std::int64_t base = civil_minute * 60;
    std::array<long, 3> offsets = {cron_utc_offset(static_cast<std::time_t>(base - kSecondsPerDay)),
                                   cron_utc_offset(static_cast<std::time_t>(base)),
                                   cron_utc_offset(static_cast<std::time_t>(base + kSecondsPerDay))};
    std::optional<std::int64_t> best;
    bool any_valid = false;
    for (long o : offsets) {
        const std::int64_t t = base - o;
        if (cron_utc_offset(static_cast<std::time_t>(t)) != o) continue;
        any_valid = true;
        if (t > after_s && (!best || t < *best)) best = t;
    }
    if (best) {
        out = *best;
        return Resolve::found;
    }
    if (any_valid) return Resolve::too_early;

    // In a gap: before the jump the offset is the smaller one. Find the jump between the two
    // readings of the wall time.
    const long lo_off = *std::min_element(offsets.begin(), offsets.end());
    const long hi_off = *std::max_element(offsets.begin(), offsets.end());
    if (lo_off == hi_off) return Resolve::too_early;
    std::int64_t lo = base - hi_off;  // offset there is still the old one
    std::int64_t hi = base - lo_off;  // offset there is already the new one
    const long old_off = cron_utc_offset(static_cast<std::time_t>(lo));
    while (hi - lo > 1) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        if (cron_utc_offset(static_cast<std::time_t>(mid)) == old_off) lo = mid;
        else hi = mid;
    }
    if (hi <= after_s) return Resolve::too_early;
    out = hi;
    return Resolve::found;
}

CronClock::time_point cron_from_seconds(std::int64_t seconds) {
    using std::chrono::duration_cast;
    const auto max_s = duration_cast<std::chrono::seconds>(CronClock::time_point::max().time_since_epoch()).count();
    const auto min_s = duration_cast<std::chrono::seconds>(CronClock::time_point::min().time_since_epoch()).count();
    if (seconds >= max_s) return CronClock::time_point::max();
    if (seconds <= min_s) return CronClock::time_point::min();
    return CronClock::time_point{duration_cast<CronClock::duration>(std::chrono::seconds{seconds})};
}

}  // namespace cron_detail

Result<CronSchedule> parse_cron(std::string_view text) {
    using namespace cron_detail;
    const auto fields = cron_split_ws(text);
    if (!fields.empty() && fields[0].starts_with('@')) {
        const std::string macro = cron_lower(fields[0]);
        if (macro == "@every") {
            if (fields.size() > 2)
                return fail(cron_error(text, "@every takes one duration such as 90s, 5m or 1h30m"));
            std::string why;
            const auto d = cron_go_duration(fields.size() == 2 ? fields[1] : std::string_view{}, why);
            if (!d) return fail(cron_error(text, why));
            if (*d < std::chrono::seconds{1})
                return fail(cron_error(text, "interval " + std::string(fields[1]) + " is shorter than 1s"));
            CronSchedule out;
            out.every = *d;
            out.text = "@every " + std::string(fields[1]);
            return out;
        }
        const char *expansion = nullptr;
        if (macro == "@yearly" || macro == "@annually") expansion = "0 0 1 1 *";
        else if (macro == "@monthly") expansion = "0 0 1 * *";
        else if (macro == "@weekly") expansion = "0 0 * * 0";
        else if (macro == "@daily" || macro == "@midnight") expansion = "0 0 * * *";
        else if (macro == "@hourly") expansion = "0 * * * *";
        else
            return fail(cron_error(text, "unknown macro \"" + std::string(fields[0]) +
                                             "\" (expected @yearly, @annually, @monthly, @weekly, @daily, "
                                             "@midnight, @hourly or @every <duration>)"));
        if (fields.size() != 1) return fail(cron_error(text, macro + " takes no further fields"));
        HSDK_TRY(CronSchedule out, cron_fields(expansion, cron_split_ws(expansion)));
        out.text = macro;
        return out;
    }
    return cron_fields(text, fields);
}

std::chrono::system_clock::time_point next_after(const CronSchedule &schedule,
                                                 std::chrono::system_clock::time_point after, bool utc) {
    using namespace cron_detail;
    if (schedule.every.count() > 0) {
        const auto step = std::chrono::duration_cast<CronClock::duration>(schedule.every);
        if (after > CronClock::time_point::max() - step) return CronClock::time_point::max();
        return after + step;
    }
    if (after == CronClock::time_point::max() || cron_never_fires(schedule)) return CronClock::time_point::max();

    const std::int64_t after_s = std::chrono::floor<std::chrono::seconds>(after.time_since_epoch()).count();
    if (utc) {
        const auto next = cron_next_civil(schedule, cron_floor_div(after_s, 60) + 1);
        return next ? cron_from_seconds(*next * 60) : CronClock::time_point::max();
    }

    tzset();  // follow TZ changes the way mktime would
    std::int64_t from = cron_local_civil_minute(after_s).value_or(cron_floor_div(after_s, 60)) + 1;
    // Each retry moves past one wall minute shown twice; an hour of them is the realistic worst.
    for (int attempts = 0; attempts < 4 * kMinutesPerDay; ++attempts) {
        const auto civil = cron_next_civil(schedule, from);
        if (!civil) break;
        std::int64_t at = 0;
        if (cron_resolve_local(*civil, after_s, at) == Resolve::found) return cron_from_seconds(at);
        from = *civil + 1;
    }
    return CronClock::time_point::max();
}

std::string describe(const CronSchedule &schedule) { return schedule.text; }

}  // namespace hypersdk::service
