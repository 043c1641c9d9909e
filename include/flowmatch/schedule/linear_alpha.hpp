#pragma once
/// \file
/// alpha_t = t, alpha'_t = 1. The smallest complete schedule: copy it to write your own.

namespace flowmatch {

/// alpha_t = t, alpha'_t = 1 (the reference implementation's LinearAlpha).
struct LinearAlpha {
  double value(double t) const { return t; }
  double derivative(double /*t*/) const { return 1.0; }
  double operator()(double t) const { return value(t); }
};

}  // namespace flowmatch
