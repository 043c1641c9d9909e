#pragma once
/// \file
/// The variance-preserving (VP) diffusion path of Song et al. (2021), in flow-matching time
/// (t = 0 noise, t = 1 data), as Lipman et al. (2023), section 4.1, write it.

#include <algorithm>
#include <cmath>
#include <limits>

#include "flowmatch/core/error.hpp"

namespace flowmatch {

namespace detail {

/// The VP SDE's noise rate b(s) = beta_min + s (beta_max - beta_min) in diffusion time s = 1 - t,
/// and its integral T(s) = beta_min s + (beta_max - beta_min) s^2 / 2.
class VariancePreservingRate {
 public:
  VariancePreservingRate(const char* where, double beta_min, double beta_max)
      : beta_min_(beta_min), beta_max_(beta_max) {
    if (!(beta_min >= 0.0 && std::isfinite(beta_min)))
      throw_invalid(where, "beta_min", beta_min, "must be finite and >= 0");
    if (!(beta_max >= beta_min && beta_max > 0.0 && std::isfinite(beta_max)))
      throw_invalid(where, "beta_max", beta_max, "must be finite, > 0 and >= beta_min");
  }
  double beta_min() const { return beta_min_; }
  double beta_max() const { return beta_max_; }
  double rate(double s) const { return beta_min_ + s * (beta_max_ - beta_min_); }
  double integral(double s) const { return beta_min_ * s + 0.5 * (beta_max_ - beta_min_) * s * s; }
  /// max(alpha_0, 1 - beta_0): how far the schedule's t = 0 end is from exact N(0, I) noise.
  double endpoint_tolerance() const {
    const double a0 = std::exp(-0.5 * integral(1.0));
    return std::max(a0, 1.0 - std::sqrt(-std::expm1(-integral(1.0))));
  }

 private:
  double beta_min_, beta_max_;
};

}  // namespace detail

/// alpha_t = exp(-T(1 - t) / 2), alpha'_t = b(1 - t) alpha_t / 2, with the VP noise rate
/// b(s) = beta_min + s (beta_max - beta_min) and T(s) = int_0^s b (defaults 0.1 and 20, Song et al.).
///
/// The diffusion never reaches pure noise: alpha_0 = exp(-T(1) / 2) (0.0066 with the defaults),
/// not 0. endpoint_tolerance() reports that gap so that GaussianConditionalPath accepts it.
class VariancePreservingAlpha {
 public:
  /// Throws InvalidArgument unless 0 <= beta_min <= beta_max, beta_max > 0, both finite.
  explicit VariancePreservingAlpha(double beta_min = 0.1, double beta_max = 20.0)
      : rate_("flowmatch::VariancePreservingAlpha::VariancePreservingAlpha", beta_min, beta_max) {}
  double beta_min() const { return rate_.beta_min(); }
  double beta_max() const { return rate_.beta_max(); }
  double value(double t) const { return std::exp(-0.5 * rate_.integral(1.0 - t)); }
  double derivative(double t) const { return 0.5 * rate_.rate(1.0 - t) * value(t); }
  double operator()(double t) const { return value(t); }
  double endpoint_tolerance() const { return rate_.endpoint_tolerance(); }

 private:
  detail::VariancePreservingRate rate_;
};

/// beta_t = sqrt(1 - exp(-T(1 - t))), beta'_t = -b(1 - t) exp(-T(1 - t)) / (2 beta_t): with
/// VariancePreservingAlpha, alpha_t^2 + beta_t^2 = 1.
///
/// Near t = 1, beta_t ~ sqrt(beta_min (1 - t)): like SquareRootBeta, beta'_1 = -infinity when
/// beta_min > 0 (the trainer's t < 1 keeps targets finite); with beta_min = 0 it tends to
/// -sqrt(beta_max / 2), the value returned at t = 1.
class VariancePreservingBeta {
 public:
  /// Throws InvalidArgument unless 0 <= beta_min <= beta_max, beta_max > 0, both finite.
  explicit VariancePreservingBeta(double beta_min = 0.1, double beta_max = 20.0)
      : rate_("flowmatch::VariancePreservingBeta::VariancePreservingBeta", beta_min, beta_max) {}
  double beta_min() const { return rate_.beta_min(); }
  double beta_max() const { return rate_.beta_max(); }
  // -expm1(-T) = 1 - exp(-T) without cancellation for small T (t near 1).
  double value(double t) const { return std::sqrt(-std::expm1(-rate_.integral(1.0 - t))); }
  double derivative(double t) const {
    const double s = 1.0 - t;
    const double b = value(t);
    if (!(b > 0.0))
      return rate_.beta_min() > 0.0 ? -std::numeric_limits<double>::infinity() : -std::sqrt(0.5 * rate_.beta_max());
    return -0.5 * rate_.rate(s) * std::exp(-rate_.integral(s)) / b;
  }
  double operator()(double t) const { return value(t); }
  double endpoint_tolerance() const { return rate_.endpoint_tolerance(); }

 private:
  detail::VariancePreservingRate rate_;
};

}  // namespace flowmatch
