// The process's executor: the three pools of include/hypersdk/executor.hpp, a timer for periodic
// tasks, and run_parallel for "N things at once" inside a job.
#pragma once

#include <hypersdk/error.hpp>
#include <hypersdk/executor.hpp>

#include "core/task_pool.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

namespace hypersdk::core {

class Executor {
public:
    // Created on first use and never destroyed: a job still running at exit keeps its threads.
    static Executor &instance();

    TaskPool &jobs() noexcept { return jobs_; }
    TaskPool &workers() noexcept { return workers_; }
    TaskPool &io() noexcept { return io_; }

    void configure(const ExecutorLimits &limits);
    [[nodiscard]] ExecutorLimits limits() const;
    [[nodiscard]] ExecutorStats stats() const;

    // fn runs on the I/O pool every `interval` (the first time one interval from now) until the
    // handle is cancelled or destroyed; cancel() waits for a run in progress to end.
    class Periodic {
    public:
        virtual ~Periodic() = default;
        virtual void cancel() noexcept = 0;
    };
    std::unique_ptr<Periodic> every(std::chrono::milliseconds interval, std::function<void()> fn);

private:
    Executor();
    TaskPool jobs_, workers_, io_;
};

// Calls fn(i) for i in [0, count), at most `parallel` at once: the calling thread takes items
// itself, and helpers on the jobs pool take the others as slots come free. Never waits for a slot
// (a full pool just means the caller does more of the work), so a job can use it without deadlock.
void run_parallel(std::size_t count, unsigned parallel, const std::function<void(std::size_t)> &fn);

// Worker threads a conversion may keep busy: `requested`, or the worker pool's size for 0.
[[nodiscard]] unsigned worker_parallelism(unsigned requested);

}  // namespace hypersdk::core
