// The one executor every job and every conversion shares: a pool of job slots, a pool of worker
// threads (reading, zero detection, compression) and a pool of I/O threads (direct writes). Fifty
// jobs run on these three pools; none of them starts threads of its own.
#pragma once

#include <cstddef>

namespace hypersdk {

struct ExecutorLimits {
    unsigned max_jobs = 0;        // jobs running at once (the rest wait, queued); 0 = default (4)
    unsigned worker_threads = 0;  // CPU work of all jobs together; 0 = default (one per core)
    unsigned io_threads = 0;      // direct writes in flight for all jobs together; 0 = default (4)
};

struct ExecutorPoolStats {
    unsigned limit = 0;         // threads the pool may run
    unsigned threads = 0;       // threads it runs now (started on demand, never beyond limit)
    unsigned busy = 0;          // of those, running a task
    std::size_t queued = 0;     // tasks waiting for a thread
    unsigned peak_threads = 0;  // most threads it has run at once since the process started
};

struct ExecutorStats {
    ExecutorPoolStats jobs, workers, io;
    unsigned timer_threads = 0;  // 1 while some job keeps a periodic task (a lease keepalive)
};

// Changes the limits; a zero field keeps that limit as it is. Lowering a limit lets threads beyond
// it finish their current task and exit. Before the first call, HSDK_MAX_JOBS, HSDK_WORKER_THREADS
// and HSDK_IO_THREADS set the initial limits.
void configure_executor(const ExecutorLimits &limits);
[[nodiscard]] ExecutorLimits executor_limits();
[[nodiscard]] ExecutorStats executor_stats();

}  // namespace hypersdk
