#pragma once
/// \file
/// sbibm's "gaussian_linear" task: inferring the mean of a 10-dimensional Gaussian.
///
/// Prior theta ~ N(0, 0.1 I); simulator x | theta ~ N(theta, 0.1 I) (0.1 is a variance in both:
/// sbibm names it a "scale" but passes the precision matrix inverse(0.1 I)). The posterior is
/// Gaussian in closed form: precision 10 I + 10 I, so p(theta | x_o) = N(x_o / 2, 0.05 I).

#include <cmath>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/sbi/task.hpp"

namespace flowmatch::sbi {

/// theta ~ N(0, 0.1 I_10), x | theta ~ N(theta, 0.1 I_10); reference posterior N(x_o / 2, 0.05 I).
class GaussianLinear {
 public:
  static constexpr std::string_view kName = "gaussian_linear";
  static constexpr Index kDim = 10;
  static constexpr double kPriorVariance = 0.1;      ///< of each coordinate of theta
  static constexpr double kNoiseVariance = 0.1;      ///< of each coordinate of x - theta
  static constexpr double kPosteriorVariance = 0.05; ///< 1 / (1 / 0.1 + 1 / 0.1)
  static constexpr bool has_analytic_reference = true;

  std::string_view name() const { return kName; }
  Index theta_dim() const { return kDim; }
  Index x_dim() const { return kDim; }

  /// Fills every column of the 10 x n `theta` with a draw of N(0, 0.1 I).
  template <class Derived>
  void sample_prior(Rng& rng, const Eigen::MatrixBase<Derived>& theta_) const {
    auto& theta = flowmatch::detail::writable(theta_);
    detail::require_sbi_rows("flowmatch::sbi::GaussianLinear::sample_prior", "theta", theta.rows(), kDim);
    const double sd = std::sqrt(kPriorVariance);
    for (Index j = 0; j < theta.cols(); ++j)
      for (Index i = 0; i < kDim; ++i) theta(i, j) = sd * rng.normal();
  }

  /// n prior draws as a new 10 x n matrix.
  Matrix<double> sample_prior(Rng& rng, Index n) const {
    detail::require_sample_count("flowmatch::sbi::GaussianLinear::sample_prior", n);
    Matrix<double> theta(kDim, n);
    sample_prior(rng, theta);
    return theta;
  }

  /// x(:, j) = theta(:, j) + sqrt(0.1) z, z ~ N(0, I); x is resized to 10 x theta.cols() and
  /// must not alias theta.
  template <class Derived>
  void simulate(Rng& rng, const Eigen::MatrixBase<Derived>& theta, Matrix<double>& x) const {
    detail::require_sbi_rows("flowmatch::sbi::GaussianLinear::simulate", "theta", theta.rows(), kDim);
    x.resize(kDim, theta.cols());
    const double sd = std::sqrt(kNoiseVariance);
    for (Index j = 0; j < theta.cols(); ++j)
      for (Index i = 0; i < kDim; ++i) x(i, j) = static_cast<double>(theta(i, j)) + sd * rng.normal();
  }

  /// The prior is Gaussian: every finite theta of 10 entries is in its support.
  bool in_support(const Eigen::Ref<const Vector<double>>& theta) const {
    detail::require_sbi_size("flowmatch::sbi::GaussianLinear::in_support", "theta", theta.size(), kDim);
    return true;
  }

  /// The posterior's mean x_o / 2 (its covariance is 0.05 I).
  Vector<double> posterior_mean(const Eigen::Ref<const Vector<double>>& x_o) const {
    detail::require_sbi_size("flowmatch::sbi::GaussianLinear::posterior_mean", "x_o", x_o.size(), kDim);
    return (kPosteriorVariance / kNoiseVariance) * x_o;
  }

  /// n exact draws of p(theta | x_o) = N(x_o / 2, 0.05 I), as a 10 x n matrix.
  Matrix<double> reference_posterior(Rng& rng, const Eigen::Ref<const Vector<double>>& x_o, Index n) const {
    constexpr const char* where = "flowmatch::sbi::GaussianLinear::reference_posterior";
    detail::require_sbi_size(where, "x_o", x_o.size(), kDim);
    detail::require_sample_count(where, n);
    const Vector<double> mean = posterior_mean(x_o);
    const double sd = std::sqrt(kPosteriorVariance);
    Matrix<double> theta(kDim, n);
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < kDim; ++i) theta(i, j) = mean(i) + sd * rng.normal();
    return theta;
  }
};

}  // namespace flowmatch::sbi
