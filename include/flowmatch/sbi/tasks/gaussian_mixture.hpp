#pragma once
/// \file
/// sbibm's "gaussian_mixture" task: a 2-D mixture of a broad and a narrow Gaussian around theta.
///
/// Prior theta ~ U(-10, 10)^2. Simulator: a component k with probabilities (0.5, 0.5), then
/// x ~ N(theta, s_k^2 I) with the standard deviations s = (1.0, 0.1) (one component per
/// simulation, shared by both coordinates). The likelihood is symmetric in x and theta, so the
/// posterior is the same mixture centred at x_o, truncated to the prior's box: sampled exactly by
/// drawing from the mixture and rejecting draws outside the box (sbibm's reference sampler).

#include <string>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/sbi/task.hpp"

namespace flowmatch::sbi {

/// theta ~ U(-10, 10)^2; x | theta ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I).
/// (flowmatch::GaussianMixture is the general density; this is the sbibm task.)
class GaussianMixture {
 public:
  static constexpr std::string_view kName = "gaussian_mixture";
  static constexpr double kPriorLow = -10.0;  ///< the prior's box is [-10, 10)^2
  static constexpr double kPriorHigh = 10.0;
  static constexpr double kBroadStd = 1.0;    ///< standard deviation of component 0
  static constexpr double kNarrowStd = 0.1;   ///< standard deviation of component 1
  static constexpr double kNarrowWeight = 0.5;
  static constexpr bool has_analytic_reference = true;

  std::string_view name() const { return kName; }
  Index theta_dim() const { return 2; }
  Index x_dim() const { return 2; }

  /// Fills every column of the 2 x n `theta` with a draw of U[-10, 10)^2.
  template <class Derived>
  void sample_prior(Rng& rng, const Eigen::MatrixBase<Derived>& theta) const {
    detail::require_sbi_rows("flowmatch::sbi::GaussianMixture::sample_prior", "theta", theta.rows(), 2);
    detail::fill_uniform_box(rng, theta, kPriorLow, kPriorHigh);
  }

  /// n prior draws as a new 2 x n matrix.
  Matrix<double> sample_prior(Rng& rng, Index n) const {
    detail::require_sample_count("flowmatch::sbi::GaussianMixture::sample_prior", n);
    Matrix<double> theta(2, n);
    sample_prior(rng, theta);
    return theta;
  }

  /// One simulation per column of theta; x is resized to 2 x theta.cols() and must not alias theta.
  template <class Derived>
  void simulate(Rng& rng, const Eigen::MatrixBase<Derived>& theta, Matrix<double>& x) const {
    detail::require_sbi_rows("flowmatch::sbi::GaussianMixture::simulate", "theta", theta.rows(), 2);
    x.resize(2, theta.cols());
    for (Index j = 0; j < theta.cols(); ++j) {
      const double s = pick_std(rng);
      for (Index i = 0; i < 2; ++i) x(i, j) = static_cast<double>(theta(i, j)) + s * rng.normal();
    }
  }

  /// Whether both entries lie in [-10, 10) (PyTorch's Uniform support).
  bool in_support(const Eigen::Ref<const Vector<double>>& theta) const {
    detail::require_sbi_size("flowmatch::sbi::GaussianMixture::in_support", "theta", theta.size(), 2);
    return detail::in_half_open_box(theta, kPriorLow, kPriorHigh);
  }

  /// n exact draws of p(theta | x_o) = [0.5 N(x_o, I) + 0.5 N(x_o, 0.01 I)] truncated to
  /// [-10, 10)^2, by rejection, as a 2 x n matrix. Throws NumericalError when fewer than one
  /// proposal in 10^4 lands in the box (after 10^6 + 10^4 n proposals).
  Matrix<double> reference_posterior(Rng& rng, const Eigen::Ref<const Vector<double>>& x_o, Index n) const {
    constexpr const char* where = "flowmatch::sbi::GaussianMixture::reference_posterior";
    detail::require_sbi_size(where, "x_o", x_o.size(), 2);
    detail::require_sample_count(where, n);
    Matrix<double> theta(2, n);
    const double max_proposals = 1e6 + 1e4 * static_cast<double>(n);
    double proposals = 0.0;
    Vector<double> candidate(2);
    for (Index j = 0; j < n;) {
      if (++proposals > max_proposals)
        throw NumericalError(std::string(where) + ": only " + std::to_string(j) + " of " +
                             std::to_string(static_cast<long long>(proposals - 1.0)) +
                             " proposals fell in the prior's box [-10, 10)^2: x_o is far outside it");
      const double s = pick_std(rng);
      for (Index i = 0; i < 2; ++i) candidate(i) = x_o(i) + s * rng.normal();
      if (detail::in_half_open_box(candidate, kPriorLow, kPriorHigh)) theta.col(j++) = candidate;
    }
    return theta;
  }

 private:
  /// The standard deviation of a component drawn with probabilities (0.5, 0.5).
  static double pick_std(Rng& rng) { return rng.uniform() < kNarrowWeight ? kNarrowStd : kBroadStd; }
};

}  // namespace flowmatch::sbi
