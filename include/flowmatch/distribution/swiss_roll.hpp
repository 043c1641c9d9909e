#pragma once
/// \file
/// The 2-D Swiss roll: a noisy spiral (scikit-learn's make_swiss_roll, projected on its plane).

#include <cmath>
#include <numbers>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"

namespace flowmatch {

/// x = scale * (s (cos s, sin s) + noise * eps), s = 1.5 pi (1 + 2 u), u ~ U[0, 1): an
/// Archimedean spiral of 1.5 turns, radius from 1.5 pi to 4.5 pi before scaling (FFJORD and
/// torchcfm use noise 1 and scale 1/5; the defaults here draw a thinner roll in about [-3.5, 3.5]^2).
class SwissRoll : public DistributionBase<SwissRoll> {
 public:
  /// noise finite and >= 0; scale finite and > 0. Throws InvalidArgument otherwise.
  explicit SwissRoll(double noise = 0.5, double scale = 0.25) : noise_(noise), scale_(scale) {
    constexpr const char* where = "flowmatch::SwissRoll::SwissRoll";
    if (!(noise >= 0.0 && std::isfinite(noise))) detail::throw_invalid(where, "noise", noise, "must be finite and >= 0");
    if (!(scale > 0.0 && std::isfinite(scale))) detail::throw_invalid(where, "scale", scale, "must be finite and > 0");
  }

  Index dim() const { return 2; }
  double noise() const { return noise_; }
  double scale() const { return scale_; }
  /// The spiral's parameter range [s_min, s_max) = [1.5 pi, 4.5 pi).
  static constexpr double s_min() { return 1.5 * std::numbers::pi; }
  static constexpr double s_max() { return 4.5 * std::numbers::pi; }

 private:
  friend DistributionBase<SwissRoll>;
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out_, Index* /*labels: no classes*/) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::SwissRoll::sample", "out", out.rows(), 2);
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j) {
      const double s = s_min() + (s_max() - s_min()) * rng.uniform();
      const double e0 = rng.normal(), e1 = rng.normal();
      out(0, j) = static_cast<S>(scale_ * (s * std::cos(s) + noise_ * e0));
      out(1, j) = static_cast<S>(scale_ * (s * std::sin(s) + noise_ * e1));
    }
  }

  double noise_, scale_;
};

}  // namespace flowmatch
