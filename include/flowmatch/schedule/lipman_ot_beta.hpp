#pragma once
/// \file
/// The optimal-transport path of Lipman et al. (2023) with a minimum width sigma_min:
/// alpha_t = t (LinearAlpha), beta_t = 1 - (1 - sigma_min) t.

#include <cmath>

#include "flowmatch/core/error.hpp"

namespace flowmatch {

/// beta_t = 1 - (1 - sigma_min) t, beta'_t = -(1 - sigma_min), for sigma_min in [0, 1).
///
/// With LinearAlpha, x_t = t z + (1 - (1 - sigma_min) t) eps and u_t = z - (1 - sigma_min) eps:
/// the "OT" conditional path of Lipman et al. (2023), eq. (20)-(23). At t = 1 the path is
/// N(z, sigma_min^2 I) rather than the point z, so beta_1 = sigma_min; the schedule says so through
/// endpoint_tolerance(), which GaussianConditionalPath's endpoint check honours. sigma_min = 0 is
/// LinearBeta.
class LipmanOTBeta {
 public:
  /// Throws InvalidArgument unless 0 <= sigma_min < 1.
  explicit LipmanOTBeta(double sigma_min = 1e-4) : sigma_min_(sigma_min) {
    if (!(sigma_min >= 0.0 && sigma_min < 1.0))
      detail::throw_invalid("flowmatch::LipmanOTBeta::LipmanOTBeta", "sigma_min", sigma_min, "must lie in [0, 1)");
  }
  double sigma_min() const { return sigma_min_; }
  double value(double t) const { return 1.0 - (1.0 - sigma_min_) * t; }
  double derivative(double /*t*/) const { return -(1.0 - sigma_min_); }
  double operator()(double t) const { return value(t); }
  /// beta_1 = sigma_min by design: the largest distance from the ideal endpoints (1 at t = 0, 0 at t = 1).
  double endpoint_tolerance() const { return sigma_min_; }

 private:
  double sigma_min_;
};

}  // namespace flowmatch
