#pragma once
/// \file
/// Polynomial schedules: alpha_t = t^n, beta_t = 1 - t^n.

#include <cmath>

#include "flowmatch/core/error.hpp"

namespace flowmatch {

namespace detail {
inline double checked_degree(const char* where, double n) {
  if (!(n > 0.0 && std::isfinite(n))) throw_invalid(where, "n (degree)", n, "the degree must be finite and > 0");
  return n;
}
}  // namespace detail

/// alpha_t = t^n, alpha'_t = n t^(n - 1), for a real degree n > 0 (n = 1 is LinearAlpha).
///
/// For n < 1, alpha'_0 is +infinity: the trainer draws t = 0 with probability 2^-24 per sample,
/// so such a degree can give an infinite training target (the trainer then throws NumericalError).
class PolynomialAlpha {
 public:
  /// Throws InvalidArgument unless n is finite and > 0.
  explicit PolynomialAlpha(double n = 2.0) : n_(detail::checked_degree("flowmatch::PolynomialAlpha::PolynomialAlpha", n)) {}
  double degree() const { return n_; }
  double value(double t) const { return std::pow(t, n_); }
  double derivative(double t) const { return n_ * std::pow(t, n_ - 1.0); }
  double operator()(double t) const { return value(t); }

 private:
  double n_;
};

/// beta_t = 1 - t^n, beta'_t = -n t^(n - 1), for a real degree n > 0 (n = 1 is LinearBeta).
/// Same caveat at t = 0 as PolynomialAlpha for n < 1.
class PolynomialBeta {
 public:
  /// Throws InvalidArgument unless n is finite and > 0.
  explicit PolynomialBeta(double n = 2.0) : n_(detail::checked_degree("flowmatch::PolynomialBeta::PolynomialBeta", n)) {}
  double degree() const { return n_; }
  double value(double t) const { return 1.0 - std::pow(t, n_); }
  double derivative(double t) const { return -n_ * std::pow(t, n_ - 1.0); }
  double operator()(double t) const { return value(t); }

 private:
  double n_;
};

}  // namespace flowmatch
