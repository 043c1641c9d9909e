#pragma once
/// \file
/// The density of the training times t: where on [0, 1) the regression samples the path.
/// Uniform by default (Lipman et al., 2023); FMPE (Wildberger, Dax et al., NeurIPS 2023) found that
/// posterior estimation learns better when t is skewed toward the data end t = 1 (PowerTime).
///
/// A new density is one small struct with `double sample(Rng&) const` (a draw in [0, 1)) and
/// `double density(double t) const` (its probability density on [0, 1]); GaussianConditionalPath
/// takes it as its last template argument.

#include <cmath>
#include <concepts>
#include <string>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"

namespace flowmatch {

/// Valid expressions, for `const T d`, `Rng rng` and a double `t`: `d.sample(rng)` -> a time in
/// [0, 1) (never 1: targets of schedules whose derivative diverges at t = 1 stay finite), and
/// `d.density(t)` -> the probability density of those draws at t.
template <class T>
concept TimeDensity = requires(const T& d, Rng& rng, double t) {
  { d.sample(rng) } -> std::convertible_to<double>;
  { d.density(t) } -> std::convertible_to<double>;
};

/// t ~ U[0, 1) on the 2^-24 grid (the law of PyTorch's float `torch.rand`): one draw of
/// Rng::uniform24(), so the reference workload's random numbers are unchanged.
struct UniformTime {
  double sample(Rng& rng) const { return rng.uniform24(); }
  double density(double t) const { return t >= 0.0 && t <= 1.0 ? 1.0 : 0.0; }
};

/// p(t) = (1 + a) t^a on [0, 1], a >= 0: FMPE's "time prior exponent". A draw is u^(1 / (1 + a))
/// for u ~ U[0, 1) on the 2^-24 grid (one draw of Rng::uniform24(), as UniformTime), so t < 1.
/// a = 0 is UniformTime; larger a puts more of the regression near the data (t = 1), where the
/// posterior's fine structure is resolved: P(t > 1/2) = 1 - 2^-(1 + a).
class PowerTime {
 public:
  /// exponent: finite and >= 0 (InvalidArgument otherwise).
  explicit PowerTime(double exponent = 1.0) : exponent_(exponent) {
    if (!(exponent >= 0.0 && std::isfinite(exponent)))
      detail::throw_invalid("flowmatch::PowerTime::PowerTime", "exponent", exponent, "must be finite and >= 0");
    inverse_ = 1.0 / (1.0 + exponent);
  }
  double exponent() const { return exponent_; }
  double sample(Rng& rng) const { return std::pow(rng.uniform24(), inverse_); }
  double density(double t) const {
    return t >= 0.0 && t <= 1.0 ? (1.0 + exponent_) * std::pow(t, exponent_) : 0.0;
  }

 private:
  double exponent_ = 1.0;
  double inverse_ = 0.5;
};

}  // namespace flowmatch
