#pragma once
/// \file
/// sbibm's "two_moons" task: a 2-D simulator whose posterior is two crescents (a bimodal,
/// curved posterior).
///
/// Prior theta ~ U(-1, 1)^2. Simulator: a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2) (0.01 is a
/// standard deviation), p = (r cos a + 0.25, r sin a): a point on a half circle of radius about
/// 0.1 around (0.25, 0); then, with z = R theta the rotation of theta by +pi/4
/// (z0 = (theta0 + theta1) / sqrt 2, z1 = (theta1 - theta0) / sqrt 2), x = p + (-|z0|, z1).
/// Because the map theta -> (-|z0|, z1) is a rotation folded at z0 = 0, the posterior is sampled
/// exactly by inverting it: draw p from the simulator at theta = 0, set q = (p0 - x0, x1 - p1),
/// flip the sign of q0 with probability 1/2, rotate q back by -pi/4 and keep it if it lies in the
/// prior's box (sbibm's _sample_reference_posterior).

#include <cmath>
#include <numbers>
#include <string>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/sbi/task.hpp"

namespace flowmatch::sbi {

/// theta ~ U(-1, 1)^2; x = (r cos a + 0.25 - |theta0 + theta1| / sqrt 2,
/// r sin a + (theta1 - theta0) / sqrt 2) with a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2).
class TwoMoons {
 public:
  static constexpr std::string_view kName = "two_moons";
  static constexpr double kPriorLow = -1.0;   ///< the prior's box is [-1, 1)^2
  static constexpr double kPriorHigh = 1.0;
  static constexpr double kRadiusMean = 0.1;  ///< r ~ N(0.1, 0.01^2)
  static constexpr double kRadiusStd = 0.01;
  static constexpr double kOffset = 0.25;     ///< the crescent's centre is (0.25, 0) before the shift
  static constexpr bool has_analytic_reference = true;

  std::string_view name() const { return kName; }
  Index theta_dim() const { return 2; }
  Index x_dim() const { return 2; }

  /// Fills every column of the 2 x n `theta` with a draw of U[-1, 1)^2.
  template <class Derived>
  void sample_prior(Rng& rng, const Eigen::MatrixBase<Derived>& theta) const {
    detail::require_sbi_rows("flowmatch::sbi::TwoMoons::sample_prior", "theta", theta.rows(), 2);
    detail::fill_uniform_box(rng, theta, kPriorLow, kPriorHigh);
  }

  /// n prior draws as a new 2 x n matrix.
  Matrix<double> sample_prior(Rng& rng, Index n) const {
    detail::require_sample_count("flowmatch::sbi::TwoMoons::sample_prior", n);
    Matrix<double> theta(2, n);
    sample_prior(rng, theta);
    return theta;
  }

  /// One simulation per column of theta; x is resized to 2 x theta.cols() and must not alias theta.
  template <class Derived>
  void simulate(Rng& rng, const Eigen::MatrixBase<Derived>& theta, Matrix<double>& x) const {
    detail::require_sbi_rows("flowmatch::sbi::TwoMoons::simulate", "theta", theta.rows(), 2);
    x.resize(2, theta.cols());
    for (Index j = 0; j < theta.cols(); ++j) {
      double p0 = 0.0, p1 = 0.0;
      crescent_point(rng, p0, p1);
      const double t0 = static_cast<double>(theta(0, j)), t1 = static_cast<double>(theta(1, j));
      const double z0 = (t0 + t1) * std::numbers::sqrt2 / 2.0;  // c t0 - s t1 with the angle -pi/4
      const double z1 = (t1 - t0) * std::numbers::sqrt2 / 2.0;  // s t0 + c t1
      x(0, j) = p0 - std::abs(z0);
      x(1, j) = p1 + z1;
    }
  }

  /// Whether both entries lie in [-1, 1) (PyTorch's Uniform support).
  bool in_support(const Eigen::Ref<const Vector<double>>& theta) const {
    detail::require_sbi_size("flowmatch::sbi::TwoMoons::in_support", "theta", theta.size(), 2);
    return detail::in_half_open_box(theta, kPriorLow, kPriorHigh);
  }

  /// n exact draws of p(theta | x_o) by sbibm's inversion sampler with rejection outside the
  /// prior (see the file comment), as a 2 x n matrix. Throws NumericalError when fewer than one
  /// proposal in 10^4 lands in the prior (after 10^6 + 10^4 n proposals): x_o is then far
  /// outside what the simulator makes.
  Matrix<double> reference_posterior(Rng& rng, const Eigen::Ref<const Vector<double>>& x_o, Index n) const {
    constexpr const char* where = "flowmatch::sbi::TwoMoons::reference_posterior";
    detail::require_sbi_size(where, "x_o", x_o.size(), 2);
    detail::require_sample_count(where, n);
    Matrix<double> theta(2, n);
    const double max_proposals = 1e6 + 1e4 * static_cast<double>(n);
    double proposals = 0.0;
    Vector<double> candidate(2);
    for (Index j = 0; j < n;) {
      if (++proposals > max_proposals) throw_rejection_failure(where, j, proposals - 1.0);
      double p0 = 0.0, p1 = 0.0;
      crescent_point(rng, p0, p1);
      double q0 = p0 - x_o(0);
      const double q1 = x_o(1) - p1;
      if (rng.uniform() < 0.5) q0 = -q0;
      // Rotation by +pi/4 (c = cos(pi/4), s = sin(pi/4)): the inverse of the simulator's -pi/4.
      candidate(0) = (q0 - q1) * std::numbers::sqrt2 / 2.0;
      candidate(1) = (q0 + q1) * std::numbers::sqrt2 / 2.0;
      if (!detail::in_half_open_box(candidate, kPriorLow, kPriorHigh)) continue;
      theta.col(j++) = candidate;
    }
    return theta;
  }

 private:
  /// p = (r cos a + 0.25, r sin a), a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2): the simulator at theta = 0.
  static void crescent_point(Rng& rng, double& p0, double& p1) {
    const double a = -std::numbers::pi / 2.0 + std::numbers::pi * rng.uniform();
    const double r = kRadiusMean + kRadiusStd * rng.normal();
    p0 = r * std::cos(a) + kOffset;
    p1 = r * std::sin(a);
  }

  [[noreturn]] static void throw_rejection_failure(const char* where, Index accepted, double proposals) {
    throw NumericalError(std::string(where) + ": only " + std::to_string(accepted) + " of " +
                         std::to_string(static_cast<long long>(proposals)) +
                         " proposals fell in the prior's box [-1, 1)^2: x_o is far from anything the simulator makes");
  }
};

}  // namespace flowmatch::sbi
