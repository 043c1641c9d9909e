#pragma once
/// \file
/// The density of the training times t: where on [0, 1) the regression samples the path.
/// Uniform by default (Lipman et al., 2023); FMPE (Wildberger, Dax et al., NeurIPS 2023) found that
/// posterior estimation learns better when t is skewed toward the data end t = 1 (PowerTime).
///
/// A new density is one small struct with `double sample(Rng&) const` (a draw in [0, 1)) and
/// `double density(double t) const` (its probability density on [0, 1]); GaussianConditionalPath
/// takes it as its last template argument. Optionally `std::string describe() const` (what a
/// checkpoint records, see CFMTrainer) and `double weight(double t) const` (a loss weight per
/// sample: WeightedTime).
///
/// Densities for image and few-step models (Esser et al. 2024, "Scaling rectified flow
/// transformers", SD3, section 3.1): LogitNormalTime, ModeTime; and BetaTime. SD3's time runs from
/// data (0) to noise (1); ours from noise (t = 0) to data (t = 1), so t_ours = 1 - t_SD3: a
/// logit-normal's location m changes sign, and ModeTime's map is mirrored. Each class comment
/// gives the density in our direction.
///
/// Every draw lies in [0, 1 - 2^-24] (kMaxTrainingTime), as the uniform draws on the 2^-24 grid:
/// the targets of schedules whose derivative diverges at t = 1 (SquareRootBeta) stay finite.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <numbers>
#include <string>
#include <utility>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>

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
  std::string describe() const { return "uniform"; }
};

/// The largest training time any density here draws: 1 - 2^-24, the largest value of the uniform
/// float grid (PyTorch's `torch.rand`).
inline constexpr double kMaxTrainingTime = 1.0 - 0x1.0p-24;

/// A density that records what it is in checkpoints: `d.describe()` -> std::string.
template <class T>
concept DescribedTimeDensity = TimeDensity<T> && requires(const T& d) {
  { d.describe() } -> std::convertible_to<std::string>;
};

/// A density that also weights the loss of each sample by `d.weight(t)` (finite, >= 0).
template <class T>
concept WeightedTimeDensity = TimeDensity<T> && requires(const T& d, double t) {
  { d.weight(t) } -> std::convertible_to<double>;
};

namespace detail {

/// What a checkpoint records of a time density: its describe(), or "custom" for one without.
template <TimeDensity T>
std::string describe_time_density(const T& d) {
  if constexpr (DescribedTimeDensity<T>) return std::string(d.describe());
  else return "custom";
}

inline double clamp_training_time(double t) { return std::clamp(t, 0.0, kMaxTrainingTime); }

/// A double's shortest round-trip text for descriptions ("0.5", "1.29").
inline std::string describe_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  for (int p = 1; p <= 17; ++p) {
    char shorter[32];
    std::snprintf(shorter, sizeof shorter, "%.*g", p, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang 2000; shape < 1 by Gamma(shape + 1) U^(1/shape)).
inline double gamma_draw(Rng& rng, double shape) {
  if (shape < 1.0) {
    const double u = rng.uniform();
    return gamma_draw(rng, shape + 1.0) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = rng.normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = rng.uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

}  // namespace detail

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
  std::string describe() const {
    return "power(exponent=" + detail::describe_number(exponent_) +
           ", uniform_weight=" + detail::describe_number(uniform_weight_) + ")";
  }

 private:
  double exponent_ = 1.0;
  double uniform_weight_ = 0.0;
  double inverse_ = 0.5;
};

/// Logit-normal times: t = sigmoid(m + s n), n ~ N(0, 1), with density on (0, 1)
///   p(t) = 1 / (s sqrt(2 pi)) * 1 / (t (1 - t)) * exp(-(logit(t) - m)^2 / (2 s^2)).
/// SD3's best setting is m = 0, s = 1 (in their direction); their m > 0 (more noise) is m < 0 here.
/// m = 0 puts most draws in the middle of the path, where the regression target is hardest to
/// predict; few at the ends. One normal draw per time; draws are clamped to [0, kMaxTrainingTime].
class LogitNormalTime {
 public:
  /// location m: finite; scale s: finite and > 0 (InvalidArgument otherwise).
  explicit LogitNormalTime(double location = 0.0, double scale = 1.0) : m_(location), s_(scale) {
    constexpr const char* where = "flowmatch::LogitNormalTime::LogitNormalTime";
    if (!std::isfinite(location)) detail::throw_invalid(where, "location", location, "must be finite");
    if (!(scale > 0.0 && std::isfinite(scale))) detail::throw_invalid(where, "scale", scale, "must be finite and > 0");
  }
  double location() const { return m_; }
  double scale() const { return s_; }
  double sample(Rng& rng) const {
    const double y = m_ + s_ * rng.normal();
    return detail::clamp_training_time(1.0 / (1.0 + std::exp(-y)));
  }
  double density(double t) const {
    if (!(t > 0.0 && t < 1.0)) return 0.0;
    const double y = std::log(t / (1.0 - t)), r = (y - m_) / s_;
    return std::exp(-0.5 * r * r) / (s_ * std::sqrt(2.0 * std::numbers::pi) * t * (1.0 - t));
  }
  std::string describe() const {
    return "logit_normal(location=" + detail::describe_number(m_) + ", scale=" + detail::describe_number(s_) + ")";
  }

 private:
  double m_ = 0.0, s_ = 1.0;
};

/// SD3's "mode sampling with heavy tails", mirrored to our direction: for u ~ U[0, 1),
///   t = g(u) = u + s (cos^2(pi u / 2) - 1 + u),
/// (SD3: t_SD3 = 1 - u - s (cos^2(pi u / 2) - 1 + u) = 1 - g(u)). s = 0 is uniform; s > 0 (SD3
/// uses 1.29) moves mass toward the middle of the path, s < 0 toward the ends. g is increasing on
/// [0, 1] for s in [-1, 2 / (pi - 2)] (about 1.752), so that is the accepted range; the density
/// is 1 / g'(g^-1(t)) with g'(u) = 1 + s - s (pi / 2) sin(pi u), inverted by bisection.
class ModeTime {
 public:
  /// scale s in [-1, 2 / (pi - 2)] (InvalidArgument otherwise).
  explicit ModeTime(double scale = 1.29) : s_(scale) {
    if (!(scale >= -1.0 && scale <= kMaxScale))
      detail::throw_invalid("flowmatch::ModeTime::ModeTime", "scale", scale,
                            "must lie in [-1, 2 / (pi - 2) = 1.7519...] (outside, the map is not monotone)");
  }
  static constexpr double kMaxScale = 2.0 / (std::numbers::pi - 2.0);
  double scale() const { return s_; }
  double sample(Rng& rng) const { return detail::clamp_training_time(map(rng.uniform24())); }
  /// g(u), the map from a uniform draw to a time.
  double map(double u) const {
    const double c = std::cos(0.5 * std::numbers::pi * u);
    return u + s_ * (c * c - 1.0 + u);
  }
  double density(double t) const {
    if (!(t >= 0.0 && t <= 1.0)) return 0.0;
    double lo = 0.0, hi = 1.0;  // g is increasing with g(0) = 0, g(1) = 1
    for (int k = 0; k < 60; ++k) {
      const double mid = 0.5 * (lo + hi);
      (map(mid) < t ? lo : hi) = mid;
    }
    const double u = 0.5 * (lo + hi);
    const double slope = 1.0 + s_ - s_ * 0.5 * std::numbers::pi * std::sin(std::numbers::pi * u);
    return slope > 0.0 ? 1.0 / slope : std::numeric_limits<double>::infinity();
  }
  std::string describe() const { return "mode(scale=" + detail::describe_number(s_) + ")"; }

 private:
  double s_ = 1.29;
};

/// t ~ Beta(a, b): p(t) = t^(a-1) (1 - t)^(b-1) / B(a, b). a > b leans toward the data (t = 1),
/// a < b toward the noise; Beta(1, 1) is uniform (but draws a different random stream than
/// UniformTime). A draw is X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b), clamped to
/// [0, kMaxTrainingTime].
class BetaTime {
 public:
  /// a, b: finite and > 0 (InvalidArgument otherwise).
  BetaTime(double a, double b) : a_(a), b_(b) {
    constexpr const char* where = "flowmatch::BetaTime::BetaTime";
    if (!(a > 0.0 && std::isfinite(a))) detail::throw_invalid(where, "a", a, "must be finite and > 0");
    if (!(b > 0.0 && std::isfinite(b))) detail::throw_invalid(where, "b", b, "must be finite and > 0");
    log_norm_ = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b);
  }
  double a() const { return a_; }
  double b() const { return b_; }
  double sample(Rng& rng) const {
    const double x = detail::gamma_draw(rng, a_), y = detail::gamma_draw(rng, b_);
    return detail::clamp_training_time(x + y > 0.0 ? x / (x + y) : 0.5);
  }
  double density(double t) const {
    if (!(t >= 0.0 && t <= 1.0)) return 0.0;
    if ((t == 0.0 && a_ < 1.0) || (t == 1.0 && b_ < 1.0)) return std::numeric_limits<double>::infinity();
    if ((t == 0.0 && a_ > 1.0) || (t == 1.0 && b_ > 1.0)) return 0.0;
    const double lt = t > 0.0 ? (a_ - 1.0) * std::log(t) : 0.0;
    const double l1 = t < 1.0 ? (b_ - 1.0) * std::log1p(-t) : 0.0;
    return std::exp(log_norm_ + lt + l1);
  }
  std::string describe() const {
    return "beta(a=" + detail::describe_number(a_) + ", b=" + detail::describe_number(b_) + ")";
  }

 private:
  double a_ = 1.0, b_ = 1.0, log_norm_ = 0.0;
};

/// A time density with a loss weight: the trainer minimises mean_j w(t_j) |u_theta - u|_j^2 / d
/// instead of the plain mean (the weights are not renormalised per batch, so the loss's scale is
/// E[w(t)] times the unweighted one). `Weight` is any callable double(double) returning a finite
/// weight >= 0 (a NumericalError names the time otherwise); `name` is what checkpoints record
/// (e.g. "snr"). Sampling draws exactly what `density` draws.
///
/// Weighting and sampling are two views of one choice: training with density p and weight w has
/// the same expected gradient as density p w / E_p[w] without weight (SD3, section 3.1), but a
/// different variance; weights let one keep a sampling density and correct it.
template <TimeDensity Density, class Weight>
  requires std::is_invocable_r_v<double, const Weight&, double>
class WeightedTime {
 public:
  WeightedTime(Density density, Weight weight, std::string name)
      : density_(std::move(density)), weight_(std::move(weight)), name_(std::move(name)) {
    if (name_.empty())
      detail::throw_invalid("flowmatch::WeightedTime::WeightedTime", "name", std::string("\"\""),
                            "must name the weight (checkpoints record it)");
  }
  double sample(Rng& rng) const { return density_.sample(rng); }
  double density(double t) const { return density_.density(t); }
  double weight(double t) const {
    const double w = static_cast<double>(weight_(t));
    if (!(w >= 0.0 && std::isfinite(w)))
      throw NumericalError("flowmatch::WeightedTime::weight: the loss weight '" + name_ + "' is " +
                           detail::to_string_value(w) + " at t = " + detail::to_string_value(t) +
                           " (weights must be finite and >= 0)");
    return w;
  }
  std::string describe() const { return detail::describe_time_density(density_) + " weighted by " + name_; }
  const Density& base() const { return density_; }
  const std::string& weight_name() const { return name_; }

 private:
  Density density_;
  Weight weight_;
  std::string name_;
};

/// Every training time at one point t0 in [0, kMaxTrainingTime] (a point mass: density() is +inf
/// at t0 and 0 elsewhere). With t0 = 0 and a PairedPath this is one-step distillation: the model
/// learns u(x0, 0) = x1 - x0 for the pairs (x0, x1), and x0 + u(x0, 0) is a one-step sampler.
class ConstantTime {
 public:
  explicit ConstantTime(double t0 = 0.0) : t0_(t0) {
    if (!(t0 >= 0.0 && t0 <= kMaxTrainingTime))
      detail::throw_invalid("flowmatch::ConstantTime::ConstantTime", "t0", t0, "must lie in [0, 1 - 2^-24]");
  }
  double time() const { return t0_; }
  double sample(Rng& /*rng*/) const { return t0_; }
  double density(double t) const { return t == t0_ ? std::numeric_limits<double>::infinity() : 0.0; }
  std::string describe() const { return "constant(t=" + detail::describe_number(t0_) + ")"; }

 private:
  double t0_ = 0.0;
};

}  // namespace flowmatch
