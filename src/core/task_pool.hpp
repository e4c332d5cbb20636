// A bounded pool of threads that start on demand. Tasks run in the order posted and must not block
// on other tasks of the same pool (the pool may have a single thread). A task inherits the log
// context (the job) of the thread that posted it.
#pragma once

#include <hypersdk/executor.hpp>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

namespace hypersdk::core {

class TaskPool {
public:
    TaskPool(std::string name, unsigned limit);
    // Waits for every thread to exit (queued tasks still run first).
    ~TaskPool();
    TaskPool(const TaskPool &) = delete;
    TaskPool &operator=(const TaskPool &) = delete;

    // Queues fn; never blocks. An exception fn throws is logged and dropped: use submit() to get it.
    void post(std::function<void()> fn);

    // Runs fn on the pool; the future carries its value or exception.
    template <class F>
    auto submit(F &&fn) -> std::future<std::invoke_result_t<F>> {
        using R = std::invoke_result_t<F>;
        auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
        auto future = task->get_future();
        post([task] { (*task)(); });
        return future;
    }

    void set_limit(unsigned limit);
    [[nodiscard]] unsigned limit() const;
    [[nodiscard]] ExecutorPoolStats stats() const;
    [[nodiscard]] const std::string &name() const noexcept { return name_; }

private:
    void spawn_locked();
    void run();

    const std::string name_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, exited_;
    std::deque<std::function<void()>> queue_;
    unsigned limit_;
    unsigned threads_ = 0, idle_ = 0, peak_ = 0;
    bool stopping_ = false;
};

}  // namespace hypersdk::core
