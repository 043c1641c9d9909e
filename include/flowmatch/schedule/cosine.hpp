#pragma once
/// \file
/// The cosine (variance-preserving trigonometric) path: alpha_t = sin(pi t / 2), beta_t = cos(pi t / 2).

#include <cmath>
#include <numbers>

namespace flowmatch {

/// alpha_t = sin(pi t / 2), alpha'_t = (pi / 2) cos(pi t / 2). With CosineBeta, alpha_t^2 + beta_t^2 = 1
/// (variance preserving) and the path has finite derivatives on all of [0, 1].
struct CosineAlpha {
  double value(double t) const { return std::sin(0.5 * std::numbers::pi * t); }
  double derivative(double t) const { return 0.5 * std::numbers::pi * std::cos(0.5 * std::numbers::pi * t); }
  double operator()(double t) const { return value(t); }
};

/// beta_t = cos(pi t / 2), beta'_t = -(pi / 2) sin(pi t / 2).
///
/// Evaluated as sin(pi (1 - t) / 2), so that beta_1 is exactly 0 (cos(pi / 2) is 6e-17 in double).
struct CosineBeta {
  double value(double t) const { return std::sin(0.5 * std::numbers::pi * (1.0 - t)); }
  double derivative(double t) const { return -0.5 * std::numbers::pi * std::sin(0.5 * std::numbers::pi * t); }
  double operator()(double t) const { return value(t); }
};

}  // namespace flowmatch
