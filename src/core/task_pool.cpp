#include "core/task_pool.hpp"

#include "core/log_context.hpp"

#include <hypersdk/log.hpp>

#include <exception>
#include <new>
#include <system_error>
#include <thread>

namespace hypersdk::core {

TaskPool::TaskPool(std::string name, unsigned limit) : name_(std::move(name)), limit_(limit == 0 ? 1 : limit) {}

TaskPool::~TaskPool() {
    std::unique_lock lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
    exited_.wait(lock, [this] { return threads_ == 0; });
}

void TaskPool::post(std::function<void()> fn) {
    // The task runs in the poster's log context: lines it logs belong to the poster's job.
    auto context = current_log_context();
    std::function<void()> task = [fn = std::move(fn), context = std::move(context)]() mutable {
        ScopedLogContext scope(std::move(context));
        fn();
    };
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(task));
    if (idle_ >= queue_.size()) {
        wake_.notify_one();
    } else if (threads_ < limit_) {
        spawn_locked();
    } else {
        wake_.notify_one();
    }
}

void TaskPool::spawn_locked() {
    ++threads_;
    if (threads_ > peak_) peak_ = threads_;
    try {
        std::thread([this] { run(); }).detach();
    } catch (const std::system_error &) {
        --threads_;  // no thread now: the queued task waits for one of the others
        if (threads_ == 0) log(LogLevel::error, name_ + " pool: cannot start a thread; tasks wait");
    }
}

void TaskPool::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        ++idle_;
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || threads_ > limit_; });
        --idle_;
        if (threads_ > limit_) break;  // beyond a lowered limit: leave the queue to the others
        if (queue_.empty()) break;     // stopping, and nothing is left to run
        auto task = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        try {
            task();
        } catch (const std::exception &e) {
            log(LogLevel::error, name_ + " pool: a task threw: " + e.what());
        } catch (...) {
            log(LogLevel::error, name_ + " pool: a task threw");
        }
        task = nullptr;  // release captures before taking the lock again
        lock.lock();
    }
    --threads_;
    exited_.notify_all();
}

void TaskPool::set_limit(unsigned limit) {
    if (limit == 0) return;
    std::lock_guard lock(mutex_);
    limit_ = limit;
    while (threads_ < limit_ && queue_.size() > idle_) spawn_locked();
    wake_.notify_all();
}

unsigned TaskPool::limit() const {
    std::lock_guard lock(mutex_);
    return limit_;
}

ExecutorPoolStats TaskPool::stats() const {
    std::lock_guard lock(mutex_);
    return ExecutorPoolStats{limit_, threads_, threads_ - idle_, queue_.size(), peak_};
}

}  // namespace hypersdk::core
