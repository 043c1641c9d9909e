#pragma once
/// \file
/// Reading sbibm's observations and reference posterior samples from the project's copy
/// (examples/posterior/sbibm/, made by its convert.py from sbibm commit f0bc440):
/// \verbatim
///   <data_dir>/<task>/observations.csv     10 observations x_o, line k + 1 = observation k;
///   <data_dir>/<task>/true_parameters.csv  the 10 parameters that produced them;
///   <data_dir>/<task>/reference_<k>.npy    10,000 reference posterior samples of observation k
///                                          (slcp and bernoulli_glm only; float32, (10000, dim)).
/// \endverbatim
/// Observations are numbered k = 1..10 as in sbibm. reference_samples() draws the three analytic
/// tasks' reference posteriors and reads the two stored ones.

#include <string>
#include <string_view>
#include <type_traits>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/io/csv.hpp"
#include "flowmatch/io/npy.hpp"
#include "flowmatch/sbi/tasks.hpp"

namespace flowmatch::sbi {

/// Observations (and reference sample files) per task in sbibm.
inline constexpr int kNumObservations = 10;
/// Reference posterior samples per observation in sbibm.
inline constexpr Index kNumReferenceSamples = 10000;

namespace detail {

inline void require_observation_number(std::string_view where, int k) {
  if (k < 1 || k > kNumObservations)
    flowmatch::detail::throw_invalid(where, "k", k, "observations are numbered 1 to 10");
}

/// Row k (1-based) of the 10-row table `<data_dir>/<task>/<file>` whose rows have `dim` entries.
/// Throws InvalidArgument for an unknown task or k outside 1..10, CsvError naming the file when
/// it is missing, malformed or not a 10 x dim table.
inline Vector<double> read_task_row(std::string_view where, const std::string& data_dir, std::string_view task,
                                    int k, std::string_view file, Index dim) {
  require_observation_number(where, k);
  const std::string path = flowmatch::detail::join_path(flowmatch::detail::join_path(data_dir, std::string(task)), std::string(file));
  const Matrix<double> table = read_csv(path);  // dim x 10: one observation per column
  if (table.rows() != dim || table.cols() != kNumObservations)
    throw CsvError(path, 0, 0,
                   "expected " + std::to_string(kNumObservations) + " rows of " + std::to_string(dim) +
                       " values (task " + std::string(task) + "), found " + std::to_string(table.cols()) + " rows of " +
                       std::to_string(table.rows()));
  return table.col(k - 1);
}

}  // namespace detail

// The loaders below are templates of nothing (call them as functions): they visit every task
// (visit_task), and as inline functions they compiled every task's simulator and reference
// posterior into each file that included <flowmatch.hpp>; as templates, only where they are called.

/// Observation k (1..10) of `task`: its x_dim() entries. Throws InvalidArgument for an unknown
/// task or k outside 1..10, CsvError naming the file when it is missing or malformed.
template <class Void = void>
Vector<double> load_observation(const std::string& data_dir, std::string_view task, int k) {
  constexpr const char* where = "flowmatch::sbi::load_observation";
  if (!is_task_name(task)) detail::throw_unknown_task(where, task);
  const Index dim = visit_task(task, [](const auto& t) { return t.x_dim(); });
  return detail::read_task_row(where, data_dir, task, k, "observations.csv", dim);
}

/// The parameter (theta_dim() entries) that produced observation k (1..10) of `task`; errors as
/// load_observation.
template <class Void = void>
Vector<double> load_true_parameters(const std::string& data_dir, std::string_view task, int k) {
  constexpr const char* where = "flowmatch::sbi::load_true_parameters";
  if (!is_task_name(task)) detail::throw_unknown_task(where, task);
  const Index dim = visit_task(task, [](const auto& t) { return t.theta_dim(); });
  return detail::read_task_row(where, data_dir, task, k, "true_parameters.csv", dim);
}

/// sbibm's 10,000 stored reference posterior samples of observation k (1..10) of slcp or
/// bernoulli_glm, as a theta_dim() x 10000 matrix (float32 values). Throws InvalidArgument for
/// an unknown task, for one of the three analytic tasks (no stored files: use
/// reference_samples()) and for k outside 1..10; NpyError naming the file when it is missing or
/// malformed, and when it holds another shape than (10000, theta_dim()).
template <class Void = void>
Matrix<double> load_reference_samples(const std::string& data_dir, std::string_view task, int k) {
  constexpr const char* where = "flowmatch::sbi::load_reference_samples";
  if (!is_task_name(task)) detail::throw_unknown_task(where, task);
  const bool analytic = visit_task(task, [](const auto& t) { return std::decay_t<decltype(t)>::has_analytic_reference; });
  if (analytic)
    flowmatch::detail::throw_invalid(where, "task", std::string(task),
                                     "has no stored reference samples (its posterior is sampled analytically: "
                                     "use reference_samples()); stored ones exist for slcp and bernoulli_glm");
  detail::require_observation_number(where, k);
  const Index dim = visit_task(task, [](const auto& t) { return t.theta_dim(); });
  const std::string path = flowmatch::detail::join_path(flowmatch::detail::join_path(data_dir, std::string(task)),
                                                        "reference_" + std::to_string(k) + ".npy");
  Matrix<double> samples = read_npy<double>(path);
  if (samples.rows() != dim || samples.cols() != kNumReferenceSamples)
    throw NpyError(path, "shape",
                   "expected (" + std::to_string(kNumReferenceSamples) + ", " + std::to_string(dim) + "), found (" +
                       std::to_string(samples.cols()) + ", " + std::to_string(samples.rows()) + ")");
  return samples;
}

/// n reference posterior samples (theta_dim() x n) of observation k (1..10) of `task`: drawn with
/// `rng` from the task's reference_posterior() for gaussian_linear, two_moons and
/// gaussian_mixture (any n >= 0); the first n of the 10,000 stored samples for slcp and
/// bernoulli_glm (n <= 10000; rng unused). Errors as load_observation and load_reference_samples,
/// and InvalidArgument for n outside those ranges.
template <class Void = void>
Matrix<double> reference_samples(const std::string& data_dir, std::string_view task, int k, Rng& rng,
                                 Index n = kNumReferenceSamples) {
  constexpr const char* where = "flowmatch::sbi::reference_samples";
  if (!is_task_name(task)) detail::throw_unknown_task(where, task);
  detail::require_observation_number(where, k);
  if (n < 0) flowmatch::detail::throw_invalid(where, "n", static_cast<long long>(n), "must be >= 0");
  return visit_task(task, [&](const auto& t) -> Matrix<double> {
    using T = std::decay_t<decltype(t)>;
    if constexpr (T::has_analytic_reference) {
      return t.reference_posterior(rng, load_observation(data_dir, task, k), n);
    } else {
      if (n > kNumReferenceSamples)
        flowmatch::detail::throw_invalid(where, "n", static_cast<long long>(n),
                                         "at most 10000 stored reference samples exist for " + std::string(task));
      Matrix<double> all = load_reference_samples(data_dir, task, k);
      if (n == kNumReferenceSamples) return all;
      return all.leftCols(n);
    }
  });
}

}  // namespace flowmatch::sbi
