#pragma once
/// \file
/// How many threads flowmatch uses.

#include <algorithm>
#include <atomic>
#include <thread>

#include <Eigen/Core>

#include "flowmatch/core/error.hpp"

namespace flowmatch {

namespace detail {
inline std::atomic<int>& thread_count() {
  static std::atomic<int> count{static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
  return count;
}
}  // namespace detail

/// Sets how many threads flowmatch's training and sampling use (default: every core). flowmatch
/// splits each batch among its own threads (core/thread_pool.hpp); Eigen's own product threading
/// (active only in programs built with OpenMP) is set to 1 so that the two never nest.
/// `threads` must be at least 1.
inline void set_num_threads(int threads) {
  if (threads < 1) detail::throw_invalid("flowmatch::set_num_threads", "threads", threads, "must be at least 1");
  detail::thread_count().store(threads);
  Eigen::setNbThreads(1);
}

/// The number of threads flowmatch uses.
inline int num_threads() { return detail::thread_count().load(); }

}  // namespace flowmatch
