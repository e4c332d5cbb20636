// A small fixed-size thread pool. Tasks must not throw across it: they return Results.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace hypersdk {

class ThreadPool {
public:
    // threads == 0 picks the number of hardware threads (at least 1).
    explicit ThreadPool(std::size_t threads = 0);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    [[nodiscard]] std::size_t size() const noexcept { return workers_.size(); }

    // Runs fn on a worker; the future carries its return value. An exception thrown by fn is
    // stored in the future (std::packaged_task), never lost on the worker thread.
    template <class F>
    auto submit(F &&fn) -> std::future<std::invoke_result_t<F>> {
        using R = std::invoke_result_t<F>;
        auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
        auto future = task->get_future();
        post([task] { (*task)(); });
        return future;
    }

    static std::size_t default_threads() noexcept;

private:
    void post(std::function<void()> job);
    void run();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

}  // namespace hypersdk
