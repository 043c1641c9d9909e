#pragma once
/// \file
/// The number of threads Eigen's matrix products use.

#include "flowmatch/core/error.hpp"

#include <Eigen/Core>

namespace flowmatch {

/// Sets how many threads Eigen's matrix products may use (effective when the program is built
/// with OpenMP; otherwise products run on one thread). `threads` must be at least 1.
inline void set_num_threads(int threads) {
  if (threads < 1) detail::throw_invalid("flowmatch::set_num_threads", "threads", threads, "must be at least 1");
  Eigen::setNbThreads(threads);
}

/// The number of threads Eigen's matrix products use.
inline int num_threads() { return Eigen::nbThreads(); }

}  // namespace flowmatch
