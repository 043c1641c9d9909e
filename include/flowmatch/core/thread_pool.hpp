#pragma once
/// \file
/// A small persistent thread pool for flowmatch's data-parallel loops.
///
/// Why not OpenMP: libgomp allocates a team descriptor on the heap at every parallel region with
/// more than one thread, and a training step must not allocate; OpenMP would also make threading
/// depend on how the user compiles. This pool starts its workers once, hands them work without
/// allocating (a function pointer and a context pointer), and assigns task k to worker
/// k % threads, always: per-worker partial sums are therefore reproducible for a thread count.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "flowmatch/core/types.hpp"

namespace flowmatch::detail {

class ThreadPool {
 public:
  /// The process-wide pool (workers start on first use of more than one thread).
  static ThreadPool& global() {
    static ThreadPool pool;
    return pool;
  }

  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (std::thread& w : workers_) w.join();
  }

  /// Runs body(task, worker) for every task in [0, tasks), on `threads` threads: the caller is
  /// worker 0 and runs tasks 0, threads, 2 threads, ...; worker w runs tasks w, w + threads, ...
  /// Returns when every task is done. `body` must not throw. While another run holds the pool
  /// (a second user thread, or a body that itself calls run), the call runs all its tasks on the
  /// calling thread as worker 0 instead of waiting.
  template <class Body>
  void run(Index tasks, int threads, Body& body) {
    if (threads > tasks) threads = static_cast<int>(tasks);
    bool expected = false;
    if (threads <= 1 || !busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      for (Index k = 0; k < tasks; ++k) body(k, 0);
      return;
    }
    struct Release {
      std::atomic<bool>& flag;
      ~Release() { flag.store(false, std::memory_order_release); }
    } release{busy_};
    start_workers(threads - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = Job{&trampoline<Body>, &body, tasks, threads};
      pending_.store(threads - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (Index k = 0; k < tasks; k += threads) body(k, 0);
    while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  struct Job {
    void (*fn)(void*, Index, int) = nullptr;
    void* context = nullptr;
    Index tasks = 0;
    int threads = 0;
  };

  template <class Body>
  static void trampoline(void* context, Index task, int worker) {
    (*static_cast<Body*>(context))(task, worker);
  }

  void start_workers(int count) {
    while (static_cast<int>(workers_.size()) < count) {
      const int id = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, id] { worker_loop(id); });
    }
  }

  void worker_loop(int id) {
    std::uint64_t seen = 0;
    for (;;) {
      // Spin a little (the next region of a training step is microseconds away), then sleep.
      for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin)
        std::this_thread::yield();
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_acquire);
        job = job_;  // a consistent snapshot: the caller writes jobs under the same lock
      }
      if (id >= job.threads) continue;  // not needed for this run
      for (Index k = id; k < job.tasks; k += job.threads) job.fn(job.context, k, id);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> workers_;
  std::atomic<bool> busy_{false};  // set by the run that owns the workers (a flag, not a mutex:
                                   // the owner may call run again from inside a task)
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  Job job_;
  bool stop_ = false;
};

}  // namespace flowmatch::detail
