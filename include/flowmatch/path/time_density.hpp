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

/// p(t) = w + (1 - w) (1 + a) t^a on [0, 1], a >= 0, w in [0, 1]: FMPE's "time prior exponent" a,
/// optionally mixed with the uniform density (weight w). A draw of the power part is
/// u^(1 / (1 + a)) for u ~ U[0, 1) on the 2^-24 grid, so t < 1. With w = 0 (the default) a draw is
/// one Rng::uniform24(), as UniformTime, and a = 0 is UniformTime exactly; with w > 0 a first
/// uniform draw picks the part. Larger a puts more of the regression near the data (t = 1), where
/// fine structure (thin, curved posteriors) is resolved: P(t > 1/2) = 1 - 2^-(1 + a) for w = 0;
/// the uniform part keeps the early times, which set the posterior's location and spread, trained.
class PowerTime {
 public:
  /// exponent: finite and >= 0; uniform_weight in [0, 1] (InvalidArgument otherwise).
  explicit PowerTime(double exponent = 1.0, double uniform_weight = 0.0)
      : exponent_(exponent), uniform_weight_(uniform_weight) {
    if (!(exponent >= 0.0 && std::isfinite(exponent)))
      detail::throw_invalid("flowmatch::PowerTime::PowerTime", "exponent", exponent, "must be finite and >= 0");
    if (!(uniform_weight >= 0.0 && uniform_weight <= 1.0))
      detail::throw_invalid("flowmatch::PowerTime::PowerTime", "uniform_weight", uniform_weight, "must lie in [0, 1]");
    inverse_ = 1.0 / (1.0 + exponent);
  }
  double exponent() const { return exponent_; }
  double uniform_weight() const { return uniform_weight_; }
  double sample(Rng& rng) const {
    if (uniform_weight_ > 0.0 && rng.uniform() < uniform_weight_) return rng.uniform24();
    return std::pow(rng.uniform24(), inverse_);
  }
  double density(double t) const {
    return t >= 0.0 && t <= 1.0
               ? uniform_weight_ + (1.0 - uniform_weight_) * (1.0 + exponent_) * std::pow(t, exponent_)
               : 0.0;
  }

 private:
  double exponent_ = 1.0;
  double uniform_weight_ = 0.0;
  double inverse_ = 0.5;
};

}  // namespace flowmatch
