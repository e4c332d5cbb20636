#include "core/executor.hpp"

#include "core/log_context.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace hypersdk::core {
namespace {

unsigned env_limit(const char *name, unsigned fallback) {
    const char *v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char *end = nullptr;
    const unsigned long n = std::strtoul(v, &end, 10);
    if (end == v || *end != '\0' || n == 0 || n > 4096) {
        log(LogLevel::warn, std::string("ignoring ") + name + "='" + v + "': expected a number from 1 to 4096");
        return fallback;
    }
    return static_cast<unsigned>(n);
}

unsigned cores() {
    const unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : n;
}

// One thread, started by the first periodic task, that posts due tasks to the I/O pool.
class TimerService {
public:
    struct Entry {
        std::chrono::milliseconds interval;
        std::chrono::steady_clock::time_point next;
        std::function<void()> fn;
        std::shared_ptr<const LogContext> context;
        bool running = false;
        bool cancelled = false;
    };

    static TimerService &instance() {
        static auto *t = new TimerService();  // never destroyed, like the executor
        return *t;
    }

    std::shared_ptr<Entry> add(std::chrono::milliseconds interval, std::function<void()> fn) {
        auto e = std::make_shared<Entry>();
        e->interval = std::max(interval, std::chrono::milliseconds(1));
        e->next = std::chrono::steady_clock::now() + e->interval;
        e->fn = std::move(fn);
        e->context = current_log_context();
        std::lock_guard lock(mutex_);
        entries_.push_back(e);
        if (!started_) {
            started_ = true;
            std::thread([this] { loop(); }).detach();
        }
        changed_.notify_all();
        return e;
    }

    void cancel(const std::shared_ptr<Entry> &e) {
        std::unique_lock lock(mutex_);
        e->cancelled = true;
        entries_.erase(std::remove(entries_.begin(), entries_.end(), e), entries_.end());
        changed_.notify_all();
        changed_.wait(lock, [&] { return !e->running; });
    }

    [[nodiscard]] unsigned threads() const {
        std::lock_guard lock(mutex_);
        return started_ ? 1 : 0;
    }

private:
    void loop() {
        std::unique_lock lock(mutex_);
        for (;;) {
            auto now = std::chrono::steady_clock::now();
            auto wake = now + std::chrono::hours(1);
            for (auto &e : entries_) {
                if (e->running) continue;
                if (e->next <= now) {
                    e->running = true;
                    Executor::instance().io().post([this, e] {
                        {
                            ScopedLogContext scope(e->context);
                            e->fn();
                        }
                        std::lock_guard l(mutex_);
                        e->running = false;
                        e->next = std::chrono::steady_clock::now() + e->interval;
                        changed_.notify_all();
                    });
                } else {
                    wake = std::min(wake, e->next);
                }
            }
            changed_.wait_until(lock, wake);
        }
    }

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::shared_ptr<Entry>> entries_;
    bool started_ = false;
};

class PeriodicHandle final : public Executor::Periodic {
public:
    explicit PeriodicHandle(std::shared_ptr<TimerService::Entry> e) : entry_(std::move(e)) {}
    ~PeriodicHandle() override { cancel(); }
    void cancel() noexcept override {
        if (entry_) TimerService::instance().cancel(entry_);
        entry_.reset();
    }

private:
    std::shared_ptr<TimerService::Entry> entry_;
};

}  // namespace

Executor::Executor()
    : jobs_("jobs", env_limit("HSDK_MAX_JOBS", 4)),
      workers_("workers", env_limit("HSDK_WORKER_THREADS", cores())),
      io_("io", env_limit("HSDK_IO_THREADS", 4)) {}

Executor &Executor::instance() {
    static auto *e = new Executor();
    return *e;
}

void Executor::configure(const ExecutorLimits &limits) {
    jobs_.set_limit(limits.max_jobs);
    workers_.set_limit(limits.worker_threads);
    io_.set_limit(limits.io_threads);
}

ExecutorLimits Executor::limits() const { return ExecutorLimits{jobs_.limit(), workers_.limit(), io_.limit()}; }

ExecutorStats Executor::stats() const {
    return ExecutorStats{jobs_.stats(), workers_.stats(), io_.stats(), TimerService::instance().threads()};
}

std::unique_ptr<Executor::Periodic> Executor::every(std::chrono::milliseconds interval, std::function<void()> fn) {
    return std::make_unique<PeriodicHandle>(TimerService::instance().add(interval, std::move(fn)));
}

void run_parallel(std::size_t count, unsigned parallel, const std::function<void(std::size_t)> &fn) {
    struct State {
        std::mutex mutex;
        std::condition_variable idle;
        std::size_t next = 0, count = 0, running = 0;
        const std::function<void(std::size_t)> *fn = nullptr;
        std::exception_ptr thrown;  // the first exception fn threw, rethrown in the caller
        // Takes items until none is left. Returns at once for a helper that starts late.
        void drain() {
            std::unique_lock lock(mutex);
            while (next < count) {
                const std::size_t i = next++;
                ++running;
                lock.unlock();
                std::exception_ptr e;
                try {
                    (*fn)(i);
                } catch (...) {
                    e = std::current_exception();
                }
                lock.lock();
                if (e && !thrown) thrown = e;
                --running;
            }
            idle.notify_all();
        }
    };
    if (count == 0) return;
    auto state = std::make_shared<State>();
    state->count = count;
    state->fn = &fn;
    const std::size_t helpers = std::min<std::size_t>(count, std::max(1u, parallel)) - 1;
    for (std::size_t h = 0; h < helpers; ++h) Executor::instance().jobs().post([state] { state->drain(); });
    state->drain();
    std::unique_lock lock(state->mutex);
    state->idle.wait(lock, [&] { return state->next >= state->count && state->running == 0; });
    if (state->thrown) std::rethrow_exception(state->thrown);
}

unsigned worker_parallelism(unsigned requested) {
    const unsigned pool = Executor::instance().workers().limit();
    return requested == 0 ? pool : requested;
}

}  // namespace hypersdk::core

namespace hypersdk {

void configure_executor(const ExecutorLimits &limits) { core::Executor::instance().configure(limits); }
ExecutorLimits executor_limits() { return core::Executor::instance().limits(); }
ExecutorStats executor_stats() { return core::Executor::instance().stats(); }

}  // namespace hypersdk
