#include <hypersdk/error.hpp>
#include <hypersdk/thread_pool.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>

using namespace hypersdk;

TEST_CASE("thread pool runs every task and returns values") {
    ThreadPool pool(3);
    CHECK(pool.size() == 3);
    std::atomic<int> sum{0};
    std::vector<std::future<int>> futures;
    for (int i = 1; i <= 100; ++i)
        futures.push_back(pool.submit([i, &sum] {
            sum += i;
            return i * i;
        }));
    long squares = 0;
    for (auto &f : futures) squares += f.get();
    CHECK(sum == 5050);
    CHECK(squares == 338350);
}

TEST_CASE("an exception thrown by a task reaches the future, not the worker") {
    ThreadPool pool(1);
    auto f = pool.submit([]() -> int { throw std::runtime_error("boom"); });
    CHECK_THROWS_WITH(f.get(), "boom");
    auto g = pool.submit([] { return 7; });
    CHECK(g.get() == 7);  // the worker survived
}

TEST_CASE("tasks return Results across the pool") {
    ThreadPool pool(2);
    auto f = pool.submit([]() -> Result<int> { return fail(Errc::io_error, "disk on fire"); });
    auto r = f.get();
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::io_error);
}

TEST_CASE("destroying the pool finishes queued work") {
    std::atomic<int> ran{0};
    {
        ThreadPool pool(1);
        for (int i = 0; i < 50; ++i) (void)pool.submit([&] { ++ran; });
    }
    CHECK(ran == 50);
}

TEST_CASE("zero threads means one per core") {
    ThreadPool pool(0);
    CHECK(pool.size() == ThreadPool::default_threads());
    CHECK(pool.size() >= 1);
}
