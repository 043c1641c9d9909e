#pragma once
/// \file
/// The adaptive Dormand-Prince 5(4) stepper (dopri5) with error control and an NFE count.

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <limits>
#include <string>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/ode/concepts.hpp"

namespace flowmatch {

/// Settings of Dopri5Stepper.
struct Dopri5Options {
  double rtol = 1e-5;        ///< relative tolerance (>= 0)
  double atol = 1e-5;        ///< absolute tolerance (>= 0; rtol and atol not both 0)
  Index max_steps = 100000;  ///< cap on attempted steps (accepted + rejected) per advance() call
  double initial_step = 0;   ///< first step size; 0 picks it automatically (Hairer's heuristic, one NFE)
  double safety = 0.9;       ///< step-size safety factor, in (0, 1]
};

/// What one advance() did: drift evaluations, accepted and rejected steps.
struct AdaptiveStats {
  Index nfe = 0;
  Index accepted = 0;
  Index rejected = 0;
};

/// Dormand-Prince 5(4): seven stages (the last one reused as the first of the next step: FSAL),
/// fifth-order solution, embedded fourth-order error estimate. A step is accepted when
///   err = sqrt( mean_ij ( e_ij / (atol + rtol max(|x_ij|, |x_new_ij|)) )^2 ) <= 1
/// over the whole batch (one step size for all samples, as torchdiffeq does), and the next step is
/// h * clamp(safety err^(-1/5), 0.2, 10) (no growth right after a rejection). advance() integrates
/// from t0 to t1 (either direction) and lands exactly on t1; it returns the NFE and keeps the full
/// counts in stats(). Throws NumericalError when the step cap is reached, the step underflows or
/// the drift turns non-finite. After the first call at a batch shape it allocates nothing.
template <Real S = float>
class Dopri5Stepper {
 public:
  using Scalar = S;
  static constexpr bool adaptive = true;
  static constexpr int order = 5;
  static constexpr std::string_view name = "dopri5";

  explicit Dopri5Stepper(Dopri5Options options = {}) : opt_(options) { validate(opt_); }
  Dopri5Stepper(double rtol, double atol, Index max_steps = 100000)
      : Dopri5Stepper(Dopri5Options{rtol, atol, max_steps, 0.0, 0.9}) {}

  const Dopri5Options& options() const { return opt_; }
  /// Counts of the last advance() call.
  const AdaptiveStats& stats() const { return stats_; }

  /// Integrates x from t0 to t1 in place with adaptive steps; returns the number of drift evaluations.
  template <ODE O, class DX>
  Index advance(O& ode, const Eigen::MatrixBase<DX>& x_, double t0, double t1) {
    static_assert(std::same_as<typename O::Scalar, S>,
                  "flowmatch: Dopri5Stepper's Scalar must equal the ODE's Scalar (Dopri5Stepper<double> for an ODE in double)");
    static_assert(std::same_as<typename DX::Scalar, S>, "flowmatch: the state's scalar must be the stepper's Scalar");
    constexpr const char* where = "flowmatch::Dopri5Stepper::advance";
    auto& x = detail::writable(x_);
    stats_ = {};
    if (!std::isfinite(t0)) detail::throw_invalid(where, "t0", t0, "must be finite");
    if (!std::isfinite(t1)) detail::throw_invalid(where, "t1", t1, "must be finite");
    if (t0 == t1) return 0;
    resize(x.rows(), x.cols());
    const double dir = t1 > t0 ? 1.0 : -1.0;
    const double span = std::abs(t1 - t0);

    ode.drift(x, t0, k_[0]);
    ++stats_.nfe;
    require_finite(k_[0], t0);
    double h = opt_.initial_step > 0 ? std::min(opt_.initial_step, span) : initial_step(ode, x, t0, span, dir);
    double t = t0;
    bool last_rejected = false;
    Index attempts = 0;
    while (dir * (t1 - t) > 0) {
      if (attempts++ >= opt_.max_steps)
        throw NumericalError(std::string(where) + ": reached max_steps = " + std::to_string(opt_.max_steps) +
                             " at t = " + detail::to_string_value(t) + " before t1 = " + detail::to_string_value(t1) +
                             " (tolerances too tight for this problem, or raise max_steps)");
      const bool final_step = h >= std::abs(t1 - t);
      if (final_step) h = std::abs(t1 - t);
      const double t_next = final_step ? t1 : t + dir * h;
      const double err = attempt(ode, x, t, t_next);
      if (!std::isfinite(err))
        throw NumericalError(std::string(where) + ": the drift or the error estimate is not finite at t = " +
                             detail::to_string_value(t));
      if (err <= 1.0) {
        x = y_;
        k_[0].swap(k_[6]);  // FSAL: f(x_new, t_next) is the first stage of the next step
        t = t_next;
        ++stats_.accepted;
        double factor = err == 0.0 ? 10.0 : opt_.safety * std::pow(err, -0.2);
        factor = std::clamp(factor, 0.2, last_rejected ? 1.0 : 10.0);
        h *= factor;
        last_rejected = false;
      } else {
        ++stats_.rejected;
        h *= std::clamp(opt_.safety * std::pow(err, -0.2), 0.2, 1.0);
        last_rejected = true;
      }
      if (dir * (t1 - t) > 0 && !(h > 1e-14 * std::max(1.0, std::abs(t))))
        throw NumericalError(std::string(where) + ": step size underflow (h = " + detail::to_string_value(h) +
                             ") at t = " + detail::to_string_value(t));
    }
    return stats_.nfe;
  }

 private:
  static void validate(const Dopri5Options& o) {
    constexpr const char* where = "flowmatch::Dopri5Stepper::Dopri5Stepper";
    if (!(o.rtol >= 0.0 && std::isfinite(o.rtol))) detail::throw_invalid(where, "rtol", o.rtol, "must be finite and >= 0");
    if (!(o.atol >= 0.0 && std::isfinite(o.atol))) detail::throw_invalid(where, "atol", o.atol, "must be finite and >= 0");
    if (o.rtol == 0.0 && o.atol == 0.0)
      detail::throw_invalid(where, "rtol", o.rtol, "rtol and atol must not both be 0 (no step could ever be accepted)");
    if (o.max_steps <= 0) detail::throw_invalid(where, "max_steps", o.max_steps, "must be at least 1");
    if (!(o.initial_step >= 0.0 && std::isfinite(o.initial_step)))
      detail::throw_invalid(where, "initial_step", o.initial_step, "must be finite and >= 0 (0: automatic)");
    if (!(o.safety > 0.0 && o.safety <= 1.0)) detail::throw_invalid(where, "safety", o.safety, "must lie in (0, 1]");
  }

  void resize(Index r, Index c) {
    if (y_.rows() == r && y_.cols() == c) return;
    for (auto& k : k_) k.resize(r, c);
    y_.resize(r, c);
    tmp_.resize(r, c);
  }

  static void require_finite(const Matrix<S>& m, double t) {
    if (!m.allFinite())
      throw NumericalError("flowmatch::Dopri5Stepper::advance: the drift is not finite at t = " + detail::to_string_value(t));
  }

  /// RMS of m scaled by atol + rtol |ref|.
  template <class M, class X>
  double scaled_norm(const M& m, const X& ref) const {
    double sum = 0.0;
    for (Index j = 0; j < m.cols(); ++j)
      for (Index i = 0; i < m.rows(); ++i) {
        const double v = static_cast<double>(m(i, j)) / (opt_.atol + opt_.rtol * std::abs(static_cast<double>(ref(i, j))));
        sum += v * v;
      }
    return std::sqrt(sum / static_cast<double>(m.size()));
  }

  /// Hairer, Norsett and Wanner, Solving ODEs I, II.4: a first step from the sizes of x, f(x) and
  /// a finite-difference estimate of f's derivative. Uses one drift evaluation.
  template <class O, class X>
  double initial_step(O& ode, X& x, double t0, double span, double dir) {
    const double d0 = scaled_norm(x, x), d1 = scaled_norm(k_[0], x);
    double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
    h0 = std::min(h0, span);
    tmp_.noalias() = x + static_cast<S>(dir * h0) * k_[0];
    ode.drift(tmp_, t0 + dir * h0, k_[1]);
    ++stats_.nfe;
    k_[2].noalias() = k_[1] - k_[0];
    const double d2 = scaled_norm(k_[2], x) / h0;
    const double dmax = std::max(d1, d2);
    const double h1 = dmax <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dmax, 1.0 / 5.0);
    return std::min({100.0 * h0, h1, span});
  }

  /// One trial step from (x, t) to t_next with k_[0] = f(x, t): y_ = the fifth-order solution,
  /// k_[6] = f(y_, t_next); returns the scaled error norm.
  template <class O, class X>
  double attempt(O& ode, const X& x, double t, double t_next) {
    const double h = t_next - t;  // signed
    // Butcher tableau of Dormand and Prince (1980).
    constexpr double c2 = 1.0 / 5, c3 = 3.0 / 10, c4 = 4.0 / 5, c5 = 8.0 / 9;
    constexpr double a21 = 1.0 / 5;
    constexpr double a31 = 3.0 / 40, a32 = 9.0 / 40;
    constexpr double a41 = 44.0 / 45, a42 = -56.0 / 15, a43 = 32.0 / 9;
    constexpr double a51 = 19372.0 / 6561, a52 = -25360.0 / 2187, a53 = 64448.0 / 6561, a54 = -212.0 / 729;
    constexpr double a61 = 9017.0 / 3168, a62 = -355.0 / 33, a63 = 46732.0 / 5247, a64 = 49.0 / 176,
                     a65 = -5103.0 / 18656;
    constexpr double b1 = 35.0 / 384, b3 = 500.0 / 1113, b4 = 125.0 / 192, b5 = -2187.0 / 6784, b6 = 11.0 / 84;
    // e = b (fifth order) - b* (fourth order).
    constexpr double e1 = 71.0 / 57600, e3 = -71.0 / 16695, e4 = 71.0 / 1920, e5 = -17253.0 / 339200,
                     e6 = 22.0 / 525, e7 = -1.0 / 40;
    const auto s = [h](double v) { return static_cast<S>(h * v); };
    auto& k = k_;
    tmp_.noalias() = x + s(a21) * k[0];
    ode.drift(tmp_, t + c2 * h, k[1]);
    tmp_.noalias() = x + s(a31) * k[0] + s(a32) * k[1];
    ode.drift(tmp_, t + c3 * h, k[2]);
    tmp_.noalias() = x + s(a41) * k[0] + s(a42) * k[1] + s(a43) * k[2];
    ode.drift(tmp_, t + c4 * h, k[3]);
    tmp_.noalias() = x + s(a51) * k[0] + s(a52) * k[1] + s(a53) * k[2] + s(a54) * k[3];
    ode.drift(tmp_, t + c5 * h, k[4]);
    tmp_.noalias() = x + s(a61) * k[0] + s(a62) * k[1] + s(a63) * k[2] + s(a64) * k[3] + s(a65) * k[4];
    ode.drift(tmp_, t_next, k[5]);
    y_.noalias() = x + s(b1) * k[0] + s(b3) * k[2] + s(b4) * k[3] + s(b5) * k[4] + s(b6) * k[5];
    ode.drift(y_, t_next, k[6]);
    stats_.nfe += 6;
    tmp_.noalias() = s(e1) * k[0] + s(e3) * k[2] + s(e4) * k[3] + s(e5) * k[4] + s(e6) * k[5] + s(e7) * k[6];
    double sum = 0.0;
    for (Index j = 0; j < x.cols(); ++j)
      for (Index i = 0; i < x.rows(); ++i) {
        const double scale = opt_.atol + opt_.rtol * std::max(std::abs(static_cast<double>(x(i, j))),
                                                              std::abs(static_cast<double>(y_(i, j))));
        const double v = static_cast<double>(tmp_(i, j)) / scale;
        sum += v * v;
      }
    return std::sqrt(sum / static_cast<double>(x.size()));
  }

  Dopri5Options opt_;
  AdaptiveStats stats_;
  std::array<Matrix<S>, 7> k_;
  Matrix<S> y_, tmp_;
};

}  // namespace flowmatch
