#pragma once
// Finite-difference gradient checks, in double.

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include <Eigen/Core>

namespace flowmatch::test {

/// Relative error |a - n| / max(|a|, |n|, floor), the measure tiny-dnn and cs231n use.
inline double relative_error(double analytic, double numeric, double floor = 1e-12) {
  const double denom = std::max({std::abs(analytic), std::abs(numeric), floor});
  return std::abs(analytic - numeric) / denom;
}

/// max(worst, error) where a NaN error counts as infinitely bad (std::max would drop it).
inline double worse(double worst, double error) {
  return std::isnan(error) ? std::numeric_limits<double>::infinity() : std::max(worst, error);
}

/// d f / d theta_i by central differences with step h, for the scalar function f of the vector
/// theta (theta is perturbed in place and restored). Error: h^2 |f'''| / 6 + rounding eps |f| / h.
inline double central_difference(const std::function<double()>& f, double& theta_i, double h = 1e-6) {
  const double saved = theta_i;
  theta_i = saved + h;
  const double fp = f();
  theta_i = saved - h;
  const double fm = f();
  theta_i = saved;
  return (fp - fm) / (2.0 * h);
}

/// d f / d theta_i by the five-point stencil (f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / 12h.
/// Error: h^4 |f^(5)| / 30 + rounding 1.5 eps |f| / h: with h = 1e-3 both are about 1e-13 for
/// the smooth, O(1) functions of these tests, far below central differences' 1e-10.
inline double five_point_difference(const std::function<double()>& f, double& theta_i, double h = 1e-3) {
  const double saved = theta_i;
  theta_i = saved + 2.0 * h;
  const double f2 = f();
  theta_i = saved + h;
  const double f1 = f();
  theta_i = saved - h;
  const double fm1 = f();
  theta_i = saved - 2.0 * h;
  const double fm2 = f();
  theta_i = saved;
  return (fm2 - 8.0 * fm1 + 8.0 * f1 - f2) / (12.0 * h);
}

}  // namespace flowmatch::test
