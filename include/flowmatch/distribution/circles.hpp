#pragma once
/// \file
/// Two concentric circles (scikit-learn's make_circles).

#include <cmath>
#include <numbers>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"

namespace flowmatch {

/// Two concentric circles in 2-D: with probability 1/2 each, radius 1 (label 0) or `factor`
/// (label 1), at an angle s ~ U[0, 2 pi), plus N(0, noise^2 I), multiplied by `scale`:
///   x = scale * (r (cos s, sin s) + noise * eps).
class Circles : public DistributionBase<Circles> {
 public:
  /// factor in (0, 1); noise finite and >= 0; scale finite and > 0. Throws InvalidArgument otherwise.
  explicit Circles(double factor = 0.5, double noise = 0.05, double scale = 1.0)
      : factor_(factor), noise_(noise), scale_(scale) {
    constexpr const char* where = "flowmatch::Circles::Circles";
    if (!(factor > 0.0 && factor < 1.0)) detail::throw_invalid(where, "factor", factor, "must lie in (0, 1)");
    if (!(noise >= 0.0 && std::isfinite(noise))) detail::throw_invalid(where, "noise", noise, "must be finite and >= 0");
    if (!(scale > 0.0 && std::isfinite(scale))) detail::throw_invalid(where, "scale", scale, "must be finite and > 0");
  }

  Index dim() const { return 2; }
  Index num_classes() const { return 2; }
  double factor() const { return factor_; }
  double noise() const { return noise_; }
  double scale() const { return scale_; }


 private:
  friend DistributionBase<Circles>;
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out_, Index* labels) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::Circles::sample", "out", out.rows(), 2);
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j) {
      const auto k = static_cast<Index>(rng.below(2));
      const double r = k == 0 ? 1.0 : factor_;
      const double s = 2.0 * std::numbers::pi * rng.uniform();
      const double e0 = rng.normal(), e1 = rng.normal();
      out(0, j) = static_cast<S>(scale_ * (r * std::cos(s) + noise_ * e0));
      out(1, j) = static_cast<S>(scale_ * (r * std::sin(s) + noise_ * e1));
      if (labels) labels[j] = k;
    }
  }

  double factor_, noise_, scale_;
};

}  // namespace flowmatch
