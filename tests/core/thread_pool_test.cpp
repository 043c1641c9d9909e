// flowmatch's thread pool: every task runs exactly once, on the worker the fixed assignment names,
// and concurrent or nested callers fall back to running on their own thread.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include <flowmatch/core/thread_pool.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using flowmatch::Index;
using flowmatch::detail::ThreadPool;

TEST_CASE("ThreadPool runs each task once on worker task % threads", "[core][threads]") {
  ThreadPool pool;
  for (const int threads : {1, 2, 3, 5}) {
    for (const Index tasks : {Index{0}, Index{1}, Index{2}, Index{7}, Index{64}}) {
      std::vector<int> runs(static_cast<std::size_t>(tasks), 0), worker(static_cast<std::size_t>(tasks), -1);
      auto body = [&](Index k, int w) {
        ++runs[static_cast<std::size_t>(k)];
        worker[static_cast<std::size_t>(k)] = w;
      };
      pool.run(tasks, threads, body);
      const int used = static_cast<int>(std::min<Index>(threads, std::max<Index>(tasks, 1)));
      for (Index k = 0; k < tasks; ++k) {
        INFO("threads " << threads << ", tasks " << tasks << ", task " << k);
        CHECK(runs[static_cast<std::size_t>(k)] == 1);
        CHECK(worker[static_cast<std::size_t>(k)] == static_cast<int>(k % used));
      }
    }
  }
}

TEST_CASE("ThreadPool: many short runs in a row all complete", "[core][threads]") {
  ThreadPool pool;
  std::atomic<long> sum{0};
  auto body = [&](Index k, int) { sum += static_cast<long>(k); };
  for (int r = 0; r < 2000; ++r) pool.run(8, 2, body);
  CHECK(sum.load() == 2000L * 28);
}

TEST_CASE("ThreadPool: a nested run and a concurrent run fall back to the calling thread", "[core][threads]") {
  ThreadPool pool;
  std::atomic<int> inner_total{0}, inner_off_thread{0};
  auto outer = [&](Index, int) {
    const std::thread::id me = std::this_thread::get_id();
    auto inner = [&](Index, int w) {
      ++inner_total;
      if (w != 0 || std::this_thread::get_id() != me) ++inner_off_thread;
    };
    pool.run(4, 2, inner);
  };
  pool.run(4, 2, outer);
  CHECK(inner_total.load() == 16);
  CHECK(inner_off_thread.load() == 0);

  std::atomic<long> a{0}, b{0};
  auto add_a = [&](Index k, int) { a += static_cast<long>(k); };
  auto add_b = [&](Index k, int) { b += static_cast<long>(k); };
  std::thread other([&] { for (int r = 0; r < 300; ++r) pool.run(16, 2, add_b); });
  for (int r = 0; r < 300; ++r) pool.run(16, 2, add_a);
  other.join();
  CHECK(a.load() == 300L * 120);
  CHECK(b.load() == 300L * 120);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
