#pragma once
/// \file
/// Two interleaving half circles (scikit-learn's make_moons), centred at the origin.

#include <array>
#include <cmath>
#include <numbers>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"

namespace flowmatch {

/// Two moons in 2-D: with probability 1/2 each, a point of the upper arc (cos s, sin s) or of the
/// lower arc (1 - cos s, 1/2 - sin s), s ~ U[0, pi), plus N(0, noise^2 I), shifted by
/// (-1/2, -1/4) so the set is centred at the origin, and multiplied by `scale`:
///   x = scale * (arc(s) - (1/2, 1/4) + noise * eps).
/// Label (sample_labelled): 0 for the upper arc, 1 for the lower.
class Moons : public DistributionBase<Moons> {
 public:
  /// noise: finite and >= 0; scale: finite and > 0. Throws InvalidArgument otherwise.
  explicit Moons(double noise = 0.1, double scale = 1.0) : noise_(noise), scale_(scale) {
    constexpr const char* where = "flowmatch::Moons::Moons";
    if (!(noise >= 0.0 && std::isfinite(noise))) detail::throw_invalid(where, "noise", noise, "must be finite and >= 0");
    if (!(scale > 0.0 && std::isfinite(scale))) detail::throw_invalid(where, "scale", scale, "must be finite and > 0");
  }

  Index dim() const { return 2; }
  Index num_classes() const { return 2; }
  double noise() const { return noise_; }
  double scale() const { return scale_; }


  /// The noise-free point of arc `label` at parameter s in [0, pi], before scaling and centring.
  static std::array<double, 2> arc_point(Index label, double s) {
    return label == 0 ? std::array<double, 2>{std::cos(s), std::sin(s)}
                      : std::array<double, 2>{1.0 - std::cos(s), 0.5 - std::sin(s)};
  }

 private:
  friend DistributionBase<Moons>;
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out_, Index* labels) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::Moons::sample", "out", out.rows(), 2);
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j) {
      const auto k = static_cast<Index>(rng.below(2));
      const double s = std::numbers::pi * rng.uniform();
      const std::array<double, 2> p = arc_point(k, s);
      const double e0 = rng.normal(), e1 = rng.normal();
      out(0, j) = static_cast<S>(scale_ * (p[0] - 0.5 + noise_ * e0));
      out(1, j) = static_cast<S>(scale_ * (p[1] - 0.25 + noise_ * e1));
      if (labels) labels[j] = k;
    }
  }

  double noise_, scale_;
};

}  // namespace flowmatch
