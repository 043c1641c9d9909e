#pragma once
/// \file
/// beta_t = 1 - t, beta'_t = -1: with LinearAlpha, the straight "rectified flow" / OT path.

namespace flowmatch {

/// beta_t = 1 - t, beta'_t = -1.
struct LinearBeta {
  double value(double t) const { return 1.0 - t; }
  double derivative(double /*t*/) const { return -1.0; }
  double operator()(double t) const { return value(t); }
};

}  // namespace flowmatch
