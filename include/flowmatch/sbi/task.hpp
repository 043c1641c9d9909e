#pragma once
/// \file
/// The Task concept: a simulation-based-inference benchmark problem, i.e. a prior p(theta) to
/// draw parameters from and a simulator drawing data x ~ p(x | theta), both as batches with one
/// sample per column (double precision). The five sbibm tasks (include/flowmatch/sbi/tasks.hpp)
/// model it; a posterior estimator learns p(theta | x) from pairs (theta, x) made by a Task.

#include <concepts>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch::sbi {

/// A benchmark task:
/// - name(): its sbibm name ("gaussian_linear", ...);
/// - theta_dim(), x_dim(): the dimensions of a parameter and of a simulation's output;
/// - sample_prior(rng, theta): fills every column of the preallocated theta_dim() x n matrix
///   `theta` with independent prior draws (DimensionMismatch when theta has other rows);
/// - simulate(rng, theta, x): resizes x to x_dim() x theta.cols() and writes one independent
///   simulation per column of theta (DimensionMismatch when theta has other rows);
/// - in_support(v): whether the parameter v lies in the prior's support (always true for a
///   Gaussian prior; DimensionMismatch when v has another size than theta_dim()).
template <class T>
concept Task = requires(const T& task, Rng& rng, Matrix<double>& theta, Matrix<double>& x,
                        const Matrix<double>& ctheta, const Eigen::Ref<const Vector<double>>& v) {
  { task.name() } -> std::convertible_to<std::string_view>;
  { task.theta_dim() } -> std::same_as<Index>;
  { task.x_dim() } -> std::same_as<Index>;
  task.sample_prior(rng, theta);
  task.simulate(rng, ctheta, x);
  { task.in_support(v) } -> std::same_as<bool>;
};

/// A Task whose reference posterior can be sampled without stored samples (closed form or
/// analytic inversion): reference_posterior(rng, x_o, n) returns theta_dim() x n draws of
/// p(theta | x_o).
template <class T>
concept AnalyticReferenceTask =
    Task<T> && T::has_analytic_reference &&
    requires(const T& task, Rng& rng, const Eigen::Ref<const Vector<double>>& x_o, Index n) {
      { task.reference_posterior(rng, x_o, n) } -> std::same_as<Matrix<double>>;
    };

namespace detail {

/// The checks every task makes of its arguments, with messages naming the task's function.
inline void require_sbi_rows(std::string_view where, std::string_view arg, Index got, Index expected) {
  flowmatch::detail::require_rows(where, arg, static_cast<long long>(got), static_cast<long long>(expected));
}

inline void require_sbi_size(std::string_view where, std::string_view arg, Index got, Index expected) {
  if (got != expected)
    flowmatch::detail::throw_dimension(where, arg, "size", static_cast<long long>(got), static_cast<long long>(expected));
}

/// n >= 0 samples (0 gives an empty matrix).
inline void require_sample_count(std::string_view where, Index n) {
  if (n < 0) flowmatch::detail::throw_invalid(where, "n", static_cast<long long>(n), "must be >= 0");
}

/// Whether every entry of v lies in [low, high): the support of PyTorch's Uniform(low, high),
/// whose log_prob is -inf from `high` on (sbibm's priors and its rejection samplers use it).
inline bool in_half_open_box(const Eigen::Ref<const Vector<double>>& v, double low, double high) {
  for (Index i = 0; i < v.size(); ++i)
    if (!(v(i) >= low && v(i) < high)) return false;
  return true;
}

/// Fills every entry of `out` with U[low, high) draws (low + (high - low) * u, u in [0, 1)).
template <class Derived>
void fill_uniform_box(Rng& rng, const Eigen::MatrixBase<Derived>& out_, double low, double high) {
  auto& out = flowmatch::detail::writable(out_);
  for (Index j = 0; j < out.cols(); ++j)
    for (Index i = 0; i < out.rows(); ++i) out(i, j) = low + (high - low) * rng.uniform();
}

}  // namespace detail
}  // namespace flowmatch::sbi
