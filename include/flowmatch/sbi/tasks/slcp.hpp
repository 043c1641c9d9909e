#pragma once
/// \file
/// sbibm's "slcp" task ("simple likelihood, complex posterior", Papamakarios et al. 2019): a
/// Gaussian likelihood whose parameters are nonlinear in theta, giving a posterior with four
/// symmetric modes and vertical cut-offs.
///
/// Prior theta ~ U(-3, 3)^5. Simulator: with m = (theta0, theta1), s1 = theta2^2, s2 = theta3^2,
/// rho = tanh(theta4) and the covariance
///   S = [[s1^2 + 1e-6, rho s1 s2], [rho s1 s2, s2^2 + 1e-6]]
/// (s1, s2 are standard deviations; 1e-6 keeps S positive definite), four independent draws
/// v_1..v_4 ~ N(m, S), flattened as x = (v_1, v_2, v_3, v_4) in R^8. sbibm simulates in float32;
/// this computes in double.

#include <cmath>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/sbi/task.hpp"

namespace flowmatch::sbi {

/// theta ~ U(-3, 3)^5; x = four iid draws of N((theta0, theta1), S(theta2, theta3, theta4)).
/// The reference posterior is stored (`examples/posterior/sbibm/slcp/reference_<k>.npy`).
class SLCP {
 public:
  static constexpr std::string_view kName = "slcp";
  static constexpr double kPriorLow = -3.0;  ///< the prior's box is [-3, 3)^5
  static constexpr double kPriorHigh = 3.0;
  static constexpr Index kDraws = 4;         ///< draws of the 2-D Gaussian per simulation
  static constexpr double kJitter = 1e-6;    ///< added to both variances
  static constexpr bool has_analytic_reference = false;

  std::string_view name() const { return kName; }
  Index theta_dim() const { return 5; }
  Index x_dim() const { return 2 * kDraws; }

  /// Fills every column of the 5 x n `theta` with a draw of U[-3, 3)^5.
  template <class Derived>
  void sample_prior(Rng& rng, const Eigen::MatrixBase<Derived>& theta) const {
    detail::require_sbi_rows("flowmatch::sbi::SLCP::sample_prior", "theta", theta.rows(), 5);
    detail::fill_uniform_box(rng, theta, kPriorLow, kPriorHigh);
  }

  /// n prior draws as a new 5 x n matrix.
  Matrix<double> sample_prior(Rng& rng, Index n) const {
    detail::require_sample_count("flowmatch::sbi::SLCP::sample_prior", n);
    Matrix<double> theta(5, n);
    sample_prior(rng, theta);
    return theta;
  }

  /// One simulation per column of theta; x is resized to 8 x theta.cols() and must not alias
  /// theta. Each draw is m + L z with L the Cholesky factor of S and z ~ N(0, I).
  template <class Derived>
  void simulate(Rng& rng, const Eigen::MatrixBase<Derived>& theta, Matrix<double>& x) const {
    detail::require_sbi_rows("flowmatch::sbi::SLCP::simulate", "theta", theta.rows(), 5);
    x.resize(2 * kDraws, theta.cols());
    for (Index j = 0; j < theta.cols(); ++j) {
      const double m0 = static_cast<double>(theta(0, j)), m1 = static_cast<double>(theta(1, j));
      const double t2 = static_cast<double>(theta(2, j)), t3 = static_cast<double>(theta(3, j));
      const double s1 = t2 * t2, s2 = t3 * t3;
      const double rho = std::tanh(static_cast<double>(theta(4, j)));
      // S = [[s1^2 + eps, rho s1 s2], [rho s1 s2, s2^2 + eps]] = L L^T, L lower triangular;
      // L11^2 = s2^2 (1 - rho^2 s1^2 / (s1^2 + eps)) + eps is written so that it stays >= eps.
      const double v1 = s1 * s1 + kJitter;
      const double l00 = std::sqrt(v1);
      const double l10 = rho * s1 * s2 / l00;
      const double l11 = std::sqrt(s2 * s2 * (1.0 - rho * rho * (s1 * s1 / v1)) + kJitter);
      for (Index d = 0; d < kDraws; ++d) {
        const double z0 = rng.normal(), z1 = rng.normal();
        x(2 * d, j) = m0 + l00 * z0;
        x(2 * d + 1, j) = m1 + l10 * z0 + l11 * z1;
      }
    }
  }

  /// Whether every entry lies in [-3, 3) (PyTorch's Uniform support).
  bool in_support(const Eigen::Ref<const Vector<double>>& theta) const {
    detail::require_sbi_size("flowmatch::sbi::SLCP::in_support", "theta", theta.size(), 5);
    return detail::in_half_open_box(theta, kPriorLow, kPriorHigh);
  }
};

}  // namespace flowmatch::sbi
