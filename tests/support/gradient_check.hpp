#pragma once
// Central-difference gradient checks, in double.

#include <algorithm>
#include <cmath>
#include <functional>

#include <Eigen/Core>

namespace flowmatch::test {

/// Relative error |a - n| / max(|a|, |n|, floor), the measure tiny-dnn and cs231n use.
inline double relative_error(double analytic, double numeric, double floor = 1e-12) {
  const double denom = std::max({std::abs(analytic), std::abs(numeric), floor});
  return std::abs(analytic - numeric) / denom;
}

/// d f / d theta_i by central differences with step h, for the scalar function f of the vector
/// theta (theta is perturbed in place and restored).
inline double central_difference(const std::function<double()>& f, double& theta_i, double h = 1e-6) {
  const double saved = theta_i;
  theta_i = saved + h;
  const double fp = f();
  theta_i = saved - h;
  const double fm = f();
  theta_i = saved;
  return (fp - fm) / (2.0 * h);
}

}  // namespace flowmatch::test
