#include "service/backoff.hpp"
#include "service/cron.hpp"
#include "service/time_window.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <set>
#include <string>

// Everything lives in one named namespace: test files are compiled in unity batches, and these
// using-declarations must not leak into the next file of the batch.
namespace cron_test {

using namespace hypersdk;
using namespace hypersdk::service;
using Clock = std::chrono::system_clock;
using std::chrono::milliseconds;

Clock::time_point cron_test_utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return Clock::from_time_t(timegm(&tm));
}

// Failures read as dates, not as nanosecond counts.
std::string cron_test_fmt(Clock::time_point tp) {
    if (tp == Clock::time_point::max()) return "never";
    const std::time_t t = Clock::to_time_t(std::chrono::floor<std::chrono::seconds>(tp));
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

std::string cron_test_next(const char *expr, Clock::time_point from, bool utc = true) {
    auto s = parse_cron(expr);
    REQUIRE_MESSAGE(s.has_value(), expr);
    return cron_test_fmt(next_after(s.value(), from, utc));
}

std::string cron_test_error(const char *expr) {
    auto s = parse_cron(expr);
    if (s) return "(parsed)";
    CHECK(s.error().code == Errc::invalid_argument);
    return s.error().message;
}

// Sets TZ for one test and puts the old value back, so other tests keep their local time.
class CronTestTz {
public:
    explicit CronTestTz(const char *tz) {
        if (const char *old = std::getenv("TZ")) old_ = old;
        setenv("TZ", tz, 1);
        tzset();
    }
    ~CronTestTz() {
        if (old_) setenv("TZ", old_->c_str(), 1);
        else unsetenv("TZ");
        tzset();
    }
    CronTestTz(const CronTestTz &) = delete;
    CronTestTz &operator=(const CronTestTz &) = delete;

private:
    std::optional<std::string> old_;
};

// 2026-03-18 is a Wednesday.
TEST_CASE("cron: macros") {
    const auto from = cron_test_utc(2026, 3, 18, 10, 20, 30);
    CHECK(cron_test_next("@hourly", from) == "2026-03-18 11:00:00");
    CHECK(cron_test_next("@daily", from) == "2026-03-19 00:00:00");
    CHECK(cron_test_next("@midnight", from) == "2026-03-19 00:00:00");
    CHECK(cron_test_next("@weekly", from) == "2026-03-22 00:00:00");
    CHECK(cron_test_next("@monthly", from) == "2026-04-01 00:00:00");
    CHECK(cron_test_next("@yearly", from) == "2027-01-01 00:00:00");
    CHECK(cron_test_next("@annually", from) == "2027-01-01 00:00:00");
    CHECK(cron_test_next("@DAILY", from) == "2026-03-19 00:00:00");
    CHECK(parse_cron("@daily").value().minutes == parse_cron("0 0 * * *").value().minutes);
    CHECK(cron_test_error("@often").find("unknown macro \"@often\"") != std::string::npos);
    CHECK(cron_test_error("@daily 5") == "invalid cron expression \"@daily 5\": @daily takes no further fields");
}

TEST_CASE("cron: the next firing is strictly after the given instant") {
    CHECK(cron_test_next("0 12 * * *", cron_test_utc(2026, 3, 18, 12, 0, 0)) == "2026-03-19 12:00:00");
    CHECK(cron_test_next("0 12 * * *", cron_test_utc(2026, 3, 18, 11, 59, 59) + milliseconds(999)) ==
          "2026-03-18 12:00:00");
    CHECK(cron_test_next("* * * * *", cron_test_utc(2026, 3, 18, 10, 20, 0)) == "2026-03-18 10:21:00");
    CHECK(cron_test_next("* * * * *", cron_test_utc(2026, 12, 31, 23, 59, 30)) == "2027-01-01 00:00:00");
}

TEST_CASE("cron: steps, ranges and lists") {
    const auto from = cron_test_utc(2026, 3, 18, 10, 20, 30);
    CHECK(cron_test_next("*/15 * * * *", from) == "2026-03-18 10:30:00");
    CHECK(cron_test_next("*/15 * * * *", cron_test_utc(2026, 3, 18, 10, 45)) == "2026-03-18 11:00:00");
    CHECK(cron_test_next("10-40/10 * * * *", cron_test_utc(2026, 3, 18, 10, 41)) == "2026-03-18 11:10:00");
    CHECK(cron_test_next("5/20 * * * *", cron_test_utc(2026, 3, 18, 10, 26)) == "2026-03-18 10:45:00");
    CHECK(cron_test_next("0 */6 * * *", from) == "2026-03-18 12:00:00");
    CHECK(cron_test_next("0,30 8,20 * * *", cron_test_utc(2026, 3, 18, 8, 30)) == "2026-03-18 20:00:00");
    CHECK(cron_test_next("15 9-17 * * *", cron_test_utc(2026, 3, 18, 17, 15)) == "2026-03-19 09:15:00");
    CHECK(cron_test_next("0 0 1-3,15 * *", from) == "2026-04-01 00:00:00");
    // Friday evening -> Monday morning.
    CHECK(cron_test_next("0 9-17 * * 1-5", cron_test_utc(2026, 3, 20, 17, 30)) == "2026-03-23 09:00:00");
    CHECK(parse_cron("*/20 * * * *").value().minutes == ((1ull << 0) | (1ull << 20) | (1ull << 40)));
    CHECK(parse_cron("0-59 * * * *").value().minutes == parse_cron("* * * * *").value().minutes);
}

TEST_CASE("cron: month and day names, Sunday as 0 or 7") {
    const auto from = cron_test_utc(2026, 3, 18, 10, 20, 30);
    CHECK(cron_test_next("0 0 1 jan,Jul *", from) == "2026-07-01 00:00:00");
    CHECK(cron_test_next("0 0 1 JAN-MAR/2 *", from) == "2027-01-01 00:00:00");
    CHECK(cron_test_next("0 9-17 * * MON-fri", cron_test_utc(2026, 3, 20, 17, 30)) == "2026-03-23 09:00:00");
    const auto sun0 = parse_cron("0 0 * * 0").value();
    const auto sun7 = parse_cron("0 0 * * 7").value();
    const auto sun = parse_cron("0 0 * * sun").value();
    CHECK(sun0.days_of_week == 1);
    CHECK(sun7.days_of_week == 1);
    CHECK(sun.days_of_week == 1);
    CHECK(cron_test_next("0 0 * * 7", from) == "2026-03-22 00:00:00");
    CHECK(parse_cron("0 0 * * 5-7").value().days_of_week == ((1u << 5) | (1u << 6) | 1u));
    CHECK(parse_cron("0 0 * * 0-7").value().days_of_week == 0x7f);
}

TEST_CASE("cron: day-of-month and day-of-week, both restricted, match either") {
    // 1st of the month OR Monday. From Wed 2026-03-18: Monday the 23rd comes first.
    CHECK(cron_test_next("0 0 1 * MON", cron_test_utc(2026, 3, 18)) == "2026-03-23 00:00:00");
    // From Monday the 30th: Tuesday 31st matches neither, Wednesday April 1st matches the day.
    CHECK(cron_test_next("0 0 1 * MON", cron_test_utc(2026, 3, 30)) == "2026-04-01 00:00:00");
    // A step still counts as a restriction.
    CHECK(cron_test_next("0 0 */10 * MON", cron_test_utc(2026, 3, 18)) == "2026-03-21 00:00:00");
    // With one side "*" the other alone decides.
    CHECK(cron_test_next("0 0 * * MON", cron_test_utc(2026, 3, 18)) == "2026-03-23 00:00:00");
    CHECK(cron_test_next("0 0 13 * *", cron_test_utc(2026, 3, 18)) == "2026-04-13 00:00:00");
    CHECK(cron_test_next("0 0 13 * ?", cron_test_utc(2026, 3, 18)) == "2026-04-13 00:00:00");
    // Feb 31st never exists, but Mondays in February do (2027-02-01 is a Monday).
    CHECK(cron_test_next("0 0 31 2 MON", cron_test_utc(2026, 3, 18)) == "2027-02-01 00:00:00");
}

TEST_CASE("cron: leap days and schedules that never fire") {
    CHECK(cron_test_next("0 0 29 2 *", cron_test_utc(2026, 1, 1)) == "2028-02-29 00:00:00");
    CHECK(cron_test_next("0 0 29 2 *", cron_test_utc(2028, 2, 29)) == "2032-02-29 00:00:00");
    // 2100 is not a leap year: the longest gap there is, eight years.
    CHECK(cron_test_next("0 0 29 2 *", cron_test_utc(2096, 3, 1)) == "2104-02-29 00:00:00");
    const auto start = Clock::now();
    CHECK(cron_test_next("0 0 30 2 *", cron_test_utc(2026, 1, 1)) == "never");
    CHECK(cron_test_next("0 0 31 4,6,9,11 *", cron_test_utc(2026, 1, 1)) == "never");
    CHECK(cron_test_next("0 0 30,31 2 *", cron_test_utc(2026, 1, 1), false) == "never");
    CHECK(Clock::now() - start < std::chrono::seconds(1));
    // Past the end of time_point's range there is nothing to return either.
    CHECK(cron_test_next("0 0 1 1 *", cron_test_utc(2262, 3, 1)) == "never");
    CHECK(next_after(parse_cron("* * * * *").value(), Clock::time_point::max(), true) == Clock::time_point::max());
    CHECK(next_after(CronSchedule{}, cron_test_utc(2026, 1, 1), true) == Clock::time_point::max());
}

TEST_CASE("cron: @every") {
    const auto from = cron_test_utc(2026, 3, 18, 10, 20, 30) + milliseconds(250);
    const auto every = [&](const char *expr) { return next_after(parse_cron(expr).value(), from, true) - from; };
    CHECK(every("@every 1s") == std::chrono::seconds(1));
    CHECK(every("@every 90s") == std::chrono::seconds(90));
    CHECK(every("@every 5m") == std::chrono::minutes(5));
    CHECK(every("@every 2h") == std::chrono::hours(2));
    CHECK(every("@every 1h30m") == std::chrono::minutes(90));
    CHECK(every("@every 1.5h") == std::chrono::minutes(90));
    CHECK(every("@every 1s500ms") == milliseconds(1500));
    CHECK(next_after(parse_cron("@every 1h").value(), Clock::time_point::max() - std::chrono::minutes(1), true) ==
          Clock::time_point::max());
    CHECK(cron_test_error("@every 500ms") == "invalid cron expression \"@every 500ms\": interval 500ms is shorter than 1s");
    CHECK(cron_test_error("@every 0") == "invalid cron expression \"@every 0\": interval 0 is shorter than 1s");
    CHECK(cron_test_error("@every").find("@every needs a duration") != std::string::npos);
    CHECK(cron_test_error("@every 5").find("missing unit in duration \"5\"") != std::string::npos);
    CHECK(cron_test_error("@every 5x").find("unknown unit \"x\"") != std::string::npos);
    CHECK(cron_test_error("@every -5m").find("invalid duration") != std::string::npos);
    CHECK(cron_test_error("@every 99999999999h").find("too long") != std::string::npos);
}

TEST_CASE("cron: errors name the field and the text") {
    CHECK(cron_test_error("61 * * * *") == "invalid cron expression \"61 * * * *\": minute 61 out of range 0-59");
    CHECK(cron_test_error("* 24 * * *") == "invalid cron expression \"* 24 * * *\": hour 24 out of range 0-23");
    CHECK(cron_test_error("0 0 0 * *") == "invalid cron expression \"0 0 0 * *\": day-of-month 0 out of range 1-31");
    CHECK(cron_test_error("0 0 * 13 *") == "invalid cron expression \"0 0 * 13 *\": month 13 out of range 1-12");
    CHECK(cron_test_error("0 0 * * 8") == "invalid cron expression \"0 0 * * 8\": day-of-week 8 out of range 0-7");
    CHECK(cron_test_error("* * * *") ==
          "invalid cron expression \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4");
    CHECK(cron_test_error("0 * * * * *").find("found 6") != std::string::npos);
    CHECK(cron_test_error("").find("found 0") != std::string::npos);
    CHECK(cron_test_error("*/0 * * * *") ==
          "invalid cron expression \"*/0 * * * *\": minute step 0 in \"*/0\" must be at least 1");
    CHECK(cron_test_error("x * * * *") == "invalid cron expression \"x * * * *\": minute \"x\" is not a number");
    CHECK(cron_test_error("0 0 * FOO *") ==
          "invalid cron expression \"0 0 * FOO *\": month \"FOO\" is not a number or month name (JAN-DEC)");
    CHECK(cron_test_error("0 0 * * funday").find("day-of-week \"funday\"") != std::string::npos);
    CHECK(cron_test_error("0 5-2 * * *").find("hour range \"5-2\" runs backwards") != std::string::npos);
    CHECK(cron_test_error("1,,2 * * * *").find("empty list item") != std::string::npos);
    CHECK(cron_test_error("*/x * * * *").find("minute step \"x\"") != std::string::npos);
    CHECK(cron_test_error("? * * * *").find("minute \"?\" is not a number") != std::string::npos);
    CHECK(cron_test_error("99999999999 * * * *").find("out of range") != std::string::npos);
    CHECK(cron_test_error("0 0 * JAN *x") ==
          "invalid cron expression \"0 0 * JAN *x\": day-of-week \"*x\" is not a number or day name (SUN-SAT)");
    CHECK(cron_test_error("0 0 * * SUN-SATURDAY").find("\"SATURDAY\"") != std::string::npos);
}

TEST_CASE("cron: describe gives a canonical text") {
    CHECK(describe(parse_cron("  0   0 * *\t*  ").value()) == "0 0 * * *");
    CHECK(describe(parse_cron("@Daily").value()) == "@daily");
    CHECK(describe(parse_cron("@every  5m").value()) == "@every 5m");
    CHECK(describe(parse_cron("*/5 9-17 * * MON-FRI").value()) == "*/5 9-17 * * MON-FRI");
}

TEST_CASE("cron: local time across DST changes") {
    // US Eastern rules without tzdata: 2026-03-08 02:00 EST jumps to 03:00 EDT (07:00Z);
    // 2026-11-01 02:00 EDT falls back to 01:00 EST (06:00Z).
    CronTestTz tz("EST5EDT,M3.2.0,M11.1.0");
    const auto before_jump = cron_test_utc(2026, 3, 8, 6, 0);  // 01:00 EST
    CHECK(cron_test_next("0 1 * * *", cron_test_utc(2026, 3, 7, 12, 0), false) == "2026-03-08 06:00:00");
    // 02:30 does not exist that night: it runs when the jump ends, then normally the next day.
    CHECK(cron_test_next("30 2 * * *", before_jump, false) == "2026-03-08 07:00:00");
    CHECK(cron_test_next("30 2 * * *", cron_test_utc(2026, 3, 8, 7, 0), false) == "2026-03-09 06:30:00");
    CHECK(cron_test_next("0 3 * * *", before_jump, false) == "2026-03-08 07:00:00");
    CHECK(cron_test_next("* * * * *", cron_test_utc(2026, 3, 8, 6, 59), false) == "2026-03-08 07:00:00");
    CHECK(cron_test_next("* * * * *", cron_test_utc(2026, 3, 8, 7, 0), false) == "2026-03-08 07:01:00");
    // 01:30 happens twice on 2026-11-01; it fires once, at the first.
    CHECK(cron_test_next("30 1 * * *", cron_test_utc(2026, 11, 1, 4, 0), false) == "2026-11-01 05:30:00");
    CHECK(cron_test_next("30 1 * * *", cron_test_utc(2026, 11, 1, 5, 30), false) == "2026-11-02 06:30:00");
    // Started during the second 01:xx hour: the second 01:30 is the next one.
    CHECK(cron_test_next("30 1 * * *", cron_test_utc(2026, 11, 1, 6, 10), false) == "2026-11-01 06:30:00");
    CHECK(cron_test_next("0 12 * * *", cron_test_utc(2026, 11, 1, 4, 0), false) == "2026-11-01 17:00:00");
    // A window opening inside the skipped hour opens when the jump ends.
    const auto window = parse_time_window("02:30-04:00").value();
    CHECK(cron_test_fmt(next_opening(window, before_jump, false)) == "2026-03-08 07:00:00");
    CHECK(inside(window, cron_test_utc(2026, 3, 8, 7, 0), false));
    CHECK_FALSE(inside(window, cron_test_utc(2026, 3, 8, 8, 0), false));  // 04:00 EDT
}

TEST_CASE("time window: parsing") {
    const auto w = parse_time_window("22:00-06:00").value();
    CHECK(w.start == std::chrono::minutes(22 * 60));
    CHECK(w.end == std::chrono::minutes(6 * 60));
    CHECK(parse_time_window("9:05 - 17:30").value() == TimeWindow{std::chrono::minutes(545), std::chrono::minutes(1050)});
    CHECK(parse_time_window("00:00-23:59").has_value());
    for (const char *bad : {"22:00", "24:00-06:00", "22:60-06:00", "ab:cd-06:00", "22:0-06:00", "-06:00", "22:00-",
                            "122:00-06:00", "22:00-06:00:00"}) {
        const auto r = parse_time_window(bad);
        CHECK_MESSAGE(!r.has_value(), bad);
        if (!r) CHECK(r.error().code == Errc::invalid_argument);
    }
    CHECK(parse_time_window("25:00-06:00").error().message ==
          "invalid time window \"25:00-06:00\": start \"25:00\" is not a time HH:MM (00:00-23:59)");
}

TEST_CASE("time window: across midnight and at its edges") {
    const auto night = parse_time_window("22:00-06:00").value();
    CHECK(inside(night, cron_test_utc(2026, 3, 18, 23, 30), true));
    CHECK(inside(night, cron_test_utc(2026, 3, 18, 5, 59), true));
    CHECK(inside(night, cron_test_utc(2026, 3, 18, 5, 59, 59), true));
    CHECK(inside(night, cron_test_utc(2026, 3, 18, 22, 0), true));
    CHECK(inside(night, cron_test_utc(2026, 3, 18, 0, 0), true));
    CHECK_FALSE(inside(night, cron_test_utc(2026, 3, 18, 6, 0), true));
    CHECK_FALSE(inside(night, cron_test_utc(2026, 3, 18, 21, 59), true));
    CHECK_FALSE(inside(night, cron_test_utc(2026, 3, 18, 21, 59, 59), true));
    CHECK_FALSE(inside(night, cron_test_utc(2026, 3, 18, 12, 0), true));

    const auto day = parse_time_window("09:00-17:00").value();
    CHECK(inside(day, cron_test_utc(2026, 3, 18, 9, 0), true));
    CHECK(inside(day, cron_test_utc(2026, 3, 18, 16, 59, 59), true));
    CHECK_FALSE(inside(day, cron_test_utc(2026, 3, 18, 17, 0), true));
    CHECK_FALSE(inside(day, cron_test_utc(2026, 3, 18, 8, 59, 59), true));

    for (const char *all : {"00:00-00:00", "12:00-12:00"}) {
        const auto w = parse_time_window(all).value();
        CHECK(inside(w, cron_test_utc(2026, 3, 18, 3, 0), true));
        CHECK(inside(w, cron_test_utc(2026, 3, 18, 12, 0), true));
        CHECK(inside(w, cron_test_utc(2026, 3, 18, 23, 59, 59), true));
    }
    // Before the epoch the minute of the day still counts forwards.
    CHECK(inside(night, cron_test_utc(1969, 12, 31, 23, 0), true));
    CHECK_FALSE(inside(night, cron_test_utc(1969, 12, 31, 12, 0), true));
}

TEST_CASE("time window: next opening") {
    const auto night = parse_time_window("22:00-06:00").value();
    const auto in = cron_test_utc(2026, 3, 18, 23, 30, 15);
    CHECK(next_opening(night, in, true) == in);
    CHECK(cron_test_fmt(next_opening(night, cron_test_utc(2026, 3, 18, 21, 59, 30), true)) == "2026-03-18 22:00:00");
    CHECK(cron_test_fmt(next_opening(night, cron_test_utc(2026, 3, 18, 6, 0), true)) == "2026-03-18 22:00:00");
    const auto day = parse_time_window("09:00-17:00").value();
    CHECK(cron_test_fmt(next_opening(day, cron_test_utc(2026, 3, 18, 17, 0), true)) == "2026-03-19 09:00:00");
    CHECK(cron_test_fmt(next_opening(day, cron_test_utc(2026, 3, 18, 8, 0), true)) == "2026-03-18 09:00:00");
    CHECK(cron_test_fmt(next_opening(day, cron_test_utc(2026, 12, 31, 18, 0), true)) == "2027-01-01 09:00:00");
}

TEST_CASE("backoff: growth and cap") {
    const milliseconds base(1000);
    const milliseconds cap(60000);
    CHECK(retry_delay(1, base, cap, 0, 1) == milliseconds(1000));
    CHECK(retry_delay(2, base, cap, 0, 1) == milliseconds(2000));
    CHECK(retry_delay(3, base, cap, 0, 1) == milliseconds(4000));
    CHECK(retry_delay(6, base, cap, 0, 1) == milliseconds(32000));
    CHECK(retry_delay(7, base, cap, 0, 1) == milliseconds(60000));
    CHECK(retry_delay(8, base, cap, 0, 1) == milliseconds(60000));
    CHECK(retry_delay(0, base, cap, 0, 1) == milliseconds(1000));  // 0 is read as the first attempt
    CHECK(retry_delay(1, milliseconds(5000), milliseconds(2000), 0, 1) == milliseconds(2000));
    CHECK(retry_delay(3, milliseconds(-5), cap, 0, 1) == milliseconds(0));
    CHECK(retry_delay(3, base, milliseconds(-5), 0, 1) == milliseconds(0));
}

TEST_CASE("backoff: huge attempts do not overflow") {
    CHECK(retry_delay(UINT_MAX, milliseconds(1000), milliseconds(60000), 0, 1) == milliseconds(60000));
    CHECK(retry_delay(200, milliseconds(1000), milliseconds::max(), 0, 1) == milliseconds::max());
    CHECK(retry_delay(64, milliseconds(1), milliseconds::max(), 0, 1) == milliseconds::max());
    CHECK(retry_delay(63, milliseconds(1), milliseconds::max(), 0, 1) == milliseconds(1LL << 62));
    const auto jittered = retry_delay(UINT_MAX, milliseconds(1000), milliseconds::max(), 1.0, 42);
    CHECK(jittered >= milliseconds(0));
    CHECK(jittered <= milliseconds::max());
}

TEST_CASE("backoff: jitter stays in bounds and is deterministic") {
    const milliseconds base(1000);
    const milliseconds cap(60000);
    std::set<long long> seen;
    for (unsigned attempt = 1; attempt <= 10; ++attempt) {
        const auto full = retry_delay(attempt, base, cap, 0, 0).count();
        for (std::uint64_t seed = 0; seed < 200; ++seed) {
            const auto half = retry_delay(attempt, base, cap, 0.5, seed).count();
            CHECK(half >= full / 2);
            CHECK(half <= full);
            const auto any = retry_delay(attempt, base, cap, 1.0, seed).count();
            CHECK(any >= 0);
            CHECK(any <= full);
            CHECK(retry_delay(attempt, base, cap, 0.5, seed) == retry_delay(attempt, base, cap, 0.5, seed));
            if (attempt == 7) seen.insert(half);
        }
    }
    // 200 seeds over a 30-second spread: the draws really differ.
    CHECK(seen.size() > 150);
    // Successive attempts of one job do not repeat one fraction of the delay.
    CHECK(retry_delay(7, base, cap, 1.0, 9) != retry_delay(8, base, cap, 1.0, 9));
    // Out-of-range jitter is clamped; NaN means none.
    CHECK(retry_delay(3, base, cap, 5.0, 3) <= milliseconds(4000));
    CHECK(retry_delay(3, base, cap, -1.0, 3) == milliseconds(4000));
    CHECK(retry_delay(3, base, cap, std::nan(""), 3) == milliseconds(4000));
}

}  // namespace cron_test
