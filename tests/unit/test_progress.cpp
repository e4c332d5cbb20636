#include <hypersdk/progress.hpp>

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace hypersdk;
using namespace std::chrono_literals;

TEST_CASE("progress reports phase start, totals and the end") {
    std::vector<ProgressInfo> seen;
    ProgressReporter r([&](const ProgressInfo &p) { seen.push_back(p); return ProgressAction::proceed; }, {}, 0ms);
    r.begin_phase("converting", 1000);
    r.advance(400);
    r.advance(600);
    r.finish_phase();
    REQUIRE(seen.size() >= 3);
    CHECK(seen.front().phase == "converting");
    CHECK(seen.front().bytes_done == 0);
    CHECK(seen.front().bytes_total == 1000);
    CHECK(seen.back().finished);
    CHECK(seen.back().bytes_done == 1000);
    CHECK(seen.back().eta_seconds == 0);
}

TEST_CASE("a callback answering cancel cancels the token") {
    CancelToken token;
    ProgressReporter r([](const ProgressInfo &p) { return p.bytes_done >= 50 ? ProgressAction::cancel : ProgressAction::proceed; },
                       token, 0ms);
    r.begin_phase("work", 100);
    CHECK_FALSE(token.is_cancelled());
    r.advance(10);
    CHECK_FALSE(token.is_cancelled());
    r.advance(40);
    CHECK(token.is_cancelled());
    CHECK_FALSE(token.check());
    CHECK(token.check().error().code == Errc::cancelled);
}

TEST_CASE("reports are rate limited but never lose bytes") {
    int calls = 0;
    ProgressReporter r([&](const ProgressInfo &) { ++calls; return ProgressAction::proceed; }, {}, 1h);
    r.begin_phase("work", 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) r.advance(1);
        });
    for (auto &t : threads) t.join();
    CHECK(calls == 1);  // only the forced begin_phase report within the hour
    CHECK(r.snapshot().bytes_done == 4000);
    r.finish_phase();
    CHECK(calls == 2);
}

TEST_CASE("rate and ETA appear once time has passed") {
    ProgressReporter r({}, {}, 0ms);
    r.begin_phase("work", 1000000);
    r.advance(1000);
    std::this_thread::sleep_for(250ms);
    r.advance(1000);
    auto s = r.snapshot();
    CHECK(s.rate_bytes_per_sec > 0);
    CHECK(s.eta_seconds > 0);
}
