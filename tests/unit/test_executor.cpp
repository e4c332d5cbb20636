#include "core/executor.hpp"
#include "core/log_context.hpp"
#include "core/task_pool.hpp"

#include <hypersdk/executor.hpp>
#include <hypersdk/log.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace hypersdk;
using namespace std::chrono_literals;

TEST_CASE("a task pool starts threads on demand and never more than its limit") {
    core::TaskPool pool("test", 3);
    CHECK(pool.stats().threads == 0);
    std::atomic<int> running{0}, peak{0}, done{0};
    for (int i = 0; i < 40; ++i)
        pool.post([&] {
            const int now = ++running;
            int p = peak.load();
            while (now > p && !peak.compare_exchange_weak(p, now)) {
            }
            std::this_thread::sleep_for(2ms);
            --running;
            ++done;
        });
    while (done.load() < 40) std::this_thread::sleep_for(1ms);
    CHECK(peak.load() <= 3);
    CHECK(pool.stats().peak_threads <= 3);
    CHECK(pool.stats().peak_threads >= 1);
}

TEST_CASE("submit carries values and exceptions; a lowered limit lets threads go") {
    core::TaskPool pool("test", 4);
    auto f = pool.submit([] { return 42; });
    CHECK(f.get() == 42);
    auto g = pool.submit([]() -> int { throw std::runtime_error("boom"); });
    CHECK_THROWS_AS(g.get(), std::runtime_error);
    std::vector<std::future<int>> many;
    for (int i = 0; i < 16; ++i) many.push_back(pool.submit([i] {
        std::this_thread::sleep_for(1ms);
        return i;
    }));
    int sum = 0;
    for (auto &m : many) sum += m.get();
    CHECK(sum == 120);
    pool.set_limit(1);
    CHECK(pool.limit() == 1);
    for (int i = 0; i < 200 && pool.stats().threads > 1; ++i) {
        pool.post([] {});
        std::this_thread::sleep_for(1ms);
    }
    CHECK(pool.stats().threads <= 1);
}

TEST_CASE("tasks carry the log context of the thread that posted them") {
    std::mutex m;
    std::vector<std::string> lines;
    auto ctx = std::make_shared<core::LogContext>();
    ctx->tag = "job test-1";
    ctx->min_level = LogLevel::info;
    ctx->sink = [&](LogLevel, std::string_view msg) {
        std::lock_guard lock(m);
        lines.emplace_back(msg);
    };
    std::vector<std::string> global;
    set_log_sink([&](LogLevel, std::string_view msg) {
        std::lock_guard lock(m);
        global.emplace_back(msg);
    }, LogLevel::info);
    {
        core::ScopedLogContext scope(ctx);
        auto f = core::Executor::instance().workers().submit([] { log(LogLevel::info, "from a worker"); });
        f.get();
        log(LogLevel::debug, "below the job's level");
    }
    log(LogLevel::info, "outside any job");
    set_log_sink({});
    std::lock_guard lock(m);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "from a worker");
    CHECK(std::find(global.begin(), global.end(), "job test-1: from a worker") != global.end());
    CHECK(std::find(global.begin(), global.end(), "outside any job") != global.end());
}

TEST_CASE("run_parallel covers every item, at most N at once, and the caller takes part") {
    std::atomic<int> running{0}, peak{0};
    std::mutex m;
    std::set<std::size_t> seen;
    std::set<std::thread::id> threads;
    core::run_parallel(20, 3, [&](std::size_t i) {
        const int now = ++running;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::sleep_for(1ms);
        {
            std::lock_guard lock(m);
            seen.insert(i);
            threads.insert(std::this_thread::get_id());
        }
        --running;
    });
    CHECK(seen.size() == 20);
    CHECK(peak.load() <= 3);
    CHECK(threads.size() <= 3);
    CHECK_THROWS_AS(core::run_parallel(4, 2, [](std::size_t i) {
        if (i == 2) throw std::runtime_error("item 2");
    }), std::runtime_error);
}

TEST_CASE("run_parallel makes progress with every job slot taken") {
    const auto before = executor_limits();
    configure_executor(ExecutorLimits{1, 0, 0});
    // Hold the only job slot; run_parallel must still finish (the caller does the work).
    // The holder owns its flags: it may still be looking at them after this test case has returned.
    struct Hold {
        std::atomic<bool> release{false}, done{false};
    };
    auto hold = std::make_shared<Hold>();
    core::Executor::instance().jobs().post([hold] {
        while (!hold->release.load()) std::this_thread::sleep_for(1ms);
        hold->done = true;
    });
    std::atomic<int> n{0};
    core::run_parallel(5, 4, [&](std::size_t) { ++n; });
    CHECK(n.load() == 5);
    hold->release = true;
    while (!hold->done.load()) std::this_thread::sleep_for(1ms);
    configure_executor(before);
}

TEST_CASE("a periodic task runs until cancelled and not after") {
    std::atomic<int> runs{0};
    auto p = core::Executor::instance().every(5ms, [&] { ++runs; });
    for (int i = 0; i < 500 && runs.load() < 3; ++i) std::this_thread::sleep_for(2ms);
    p->cancel();
    const int at_cancel = runs.load();
    CHECK(at_cancel >= 3);
    std::this_thread::sleep_for(30ms);
    CHECK(runs.load() == at_cancel);
    CHECK(executor_stats().timer_threads == 1);
}

TEST_CASE("executor limits change, and zero keeps a limit") {
    const auto before = executor_limits();
    configure_executor(ExecutorLimits{7, 0, 5});
    CHECK(executor_limits().max_jobs == 7);
    CHECK(executor_limits().worker_threads == before.worker_threads);
    CHECK(executor_limits().io_threads == 5);
    configure_executor(before);
    CHECK(executor_limits().max_jobs == before.max_jobs);
}
