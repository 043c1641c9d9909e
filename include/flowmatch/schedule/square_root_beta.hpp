#pragma once
/// \file
/// beta_t = sqrt(1 - t), beta'_t = -1 / (2 sqrt(1 - t)): the reference implementation's schedule.

#include <cmath>
#include <limits>

namespace flowmatch {

/// beta_t = sqrt(1 - t), beta'_t = -1 / (2 sqrt(1 - t)).
///
/// The derivative is exact (the reference implementation adds 1e-4 to the denominator) and is -infinity at t = 1.
/// Training never evaluates it there: the trainer draws t from the 2^-24 grid on [0, 1), where
/// |beta'_t| <= 2048; see GaussianConditionalPath for what happens near t = 1.
struct SquareRootBeta {
  double value(double t) const { return std::sqrt(1.0 - t); }
  double derivative(double t) const {
    const double s = std::sqrt(1.0 - t);
    return s > 0.0 ? -0.5 / s : -std::numeric_limits<double>::infinity();
  }
  double operator()(double t) const { return value(t); }
};

}  // namespace flowmatch
