#pragma once
/// \file
/// Variable-step explicit Adams-Bashforth steppers on the velocity (AB2, AB3): one drift evaluation
/// a step, the earlier steps' evaluations reused, for sampling with few NFE.
///
/// A step from t_n to t_{n+1} = t_n + h integrates the polynomial through the last k drifts
/// (t_n, f_n), (t_{n-1}, f_{n-1}), ... over [t_n, t_{n+1}]:
///   AB2: x += h [(1 + r/2) f_n - (r/2) f_{n-1}],  r = h / (t_n - t_{n-1});
///   AB3: x += w_0 f_n + w_1 f_{n-1} + w_2 f_{n-2} with the integrals of the Lagrange basis on the
///        nodes 0, -a, -(a + b) (a = t_n - t_{n-1}, b = t_{n-1} - t_{n-2}, c = a + b):
///        w_0 = (h^3/3 + (a + c) h^2/2 + a c h) / (a c),  w_1 = -(h^3/3 + c h^2/2) / (a b),
///        w_2 = (h^3/3 + a h^2/2) / (c b)      (on a uniform grid: h (23, -16, 5) / 12).
/// The coefficients follow the actual past step sizes, so any increasing grid works (the largest
/// step of shifted_time_grid(16, 3) is 7.7 times its smallest, of edm_time_grid(16) 21 times);
/// t may also run backwards (h, a, b all negative; the formulas are homogeneous in them).
///
/// History. The past drifts and their times live in the stepper. They are used only when a step
/// continues the previous one: it starts where the last ended (t0 == last t1 up to a few ulps),
/// with the same batch shape and in the same direction; otherwise the stepper forgets them. The
/// start therefore runs at lower order, as DPM-Solver++(2M) does: Euler for the first step, AB2
/// for the second (AB3). ODESimulator calls reset() at the start of every simulate* call, so each
/// simulation starts clean even when a new batch happens to start at the time the last one ended;
/// a caller that drives advance() by hand and switches to another batch (or another ODE) at the
/// same time must call reset() itself.
///
/// The start, corrected. Euler's first step leaves an error of O(h^2) in the state, which a k-step
/// method carries to the end: AB3 started that way converges with order 2 only (measured: the
/// error ratio per halving of h falls to 2^2.07 at 256 steps on dx/dt = t x^2). So when the second
/// step has evaluated f_1 (at the Euler point) it first turns the Euler step into Heun's, the
/// trapezoid rule on the two drifts it now has: x += (h_0 / 2)(f_1 - f_0), then takes its own step.
/// The start then costs no extra NFE, its error is O(h^3) and AB3 keeps order 3 (measured 2.97).
/// (At 2 NFE, AB2 started this way is the midpoint rule over the whole interval:
/// x_2 = x_0 + (t_2 - t_0) f(x_0 + h_0 f_0, t_1) on a uniform grid.) The state a trajectory records
/// after the first step is the Euler one; every later state includes the correction.
///
/// Why Adams-Bashforth on the velocity. A flow-matching sampler's cost is its NFE; RK methods
/// spend 2 to 4 evaluations a step and throw them away, AB spends one and reuses them, so for the
/// same NFE it takes twice as many steps as Heun or midpoint (4 times as many as RK4); how that
/// pays on the reference workload, grid by grid, is measured in the README ("Few-step solvers",
/// benchmarks/few_step.cpp): it depends on the grid. It needs nothing but the ODE
/// concept's drift u(x, t): it runs on a learned field, a guided one, the augmented
/// state-and-divergence ODE of the log-likelihood, or any user ODE, under any schedule.
/// DPM-Solver++(2M) is the diffusion-model counterpart: for a Gaussian path x_t = alpha_t x1 +
/// beta_t x0 the marginal velocity is affine in the data prediction x1_hat = E[x1 | x_t],
///   u = (beta'/beta) x + (alpha' - alpha beta'/beta) x1_hat,
/// and DPM-Solver++ integrates the linear part exactly (in lambda = log(alpha/beta)) while
/// extrapolating x1_hat linearly in lambda. That holds for every Gaussian path, including the
/// reference workload's beta_t = sqrt(1 - t), but it needs the path's alpha and beta (to turn the
/// model's velocity into x1_hat and to place the steps in lambda, which is -infinity at t = 0
/// where alpha_0 = 0) and applies only to drifts of that form; it is not implemented here.
/// AB is the generic method; comparing the two on the reference workload is future work.
///
/// No step allocates after the first at a batch shape: the drift buffers are sized once and
/// rotated by swapping (Eigen swaps the pointers), never copied.

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string_view>

#include "flowmatch/core/types.hpp"
#include "flowmatch/ode/concepts.hpp"
#include "flowmatch/ode/explicit_steppers.hpp"

namespace flowmatch {

/// The variable-step explicit Adams-Bashforth method with `Steps` (2 or 3) past drifts: global
/// order Steps, one drift evaluation a step. Use the aliases AdamsBashforth2Stepper and
/// AdamsBashforth3Stepper. A FixedStepper: advance() makes one step and returns 1 (NFE).
template <Real S, int Steps>
class AdamsBashforthStepper : public ExplicitStepperBase<AdamsBashforthStepper<S, Steps>, S> {
  static_assert(Steps == 2 || Steps == 3, "flowmatch: AdamsBashforthStepper is implemented for 2 and 3 steps (AB2, AB3)");

 public:
  static constexpr int order = Steps;
  static constexpr int stages = 1;
  static constexpr std::string_view name = Steps == 2 ? "ab2" : "ab3";

  /// Forgets the past drifts: the next step is an Euler step.
  void reset() { past_ = 0; }

  /// How many past drifts the next step would reuse if it continues the last one (0 to Steps - 1).
  int history() const { return past_; }

  /// Called by the base on the first step at a batch shape: new buffers, so no history.
  void resize_buffers(Index r, Index c) {
    for (Matrix<S>& f : f_) f.resize(r, c);
    past_ = 0;
  }

  template <class O, class X>
  void do_step(O& ode, X& x, double t0, double t1) {
    const double h = t1 - t0;
    const int dir = (h > 0.0) - (h < 0.0);
    if (!(past_ > 0 && dir != 0 && dir == dir_ && continues(t0))) past_ = 0;
    // f_[0] takes the new drift; older ones move one slot down (swaps: no copy, no allocation).
    for (int k = Steps - 1; k > 0; --k) {
      f_[static_cast<std::size_t>(k)].swap(f_[static_cast<std::size_t>(k - 1)]);
      t_[static_cast<std::size_t>(k)] = t_[static_cast<std::size_t>(k - 1)];
    }
    t_[0] = t0;
    ode.drift(x, t0, f_[0]);
    const auto s = [](double v) { return static_cast<S>(v); };
    if (past_ == 0) {  // Euler
      x.noalias() += s(h) * f_[0];
    } else if (start_) {  // AB2 after correcting the Euler start to Heun: + (a/2)(f_0 - f_1)
      const double a = t_[0] - t_[1], r = h / a;
      x.noalias() += s(0.5 * a + h * (1.0 + 0.5 * r)) * f_[0] - s(0.5 * a + h * 0.5 * r) * f_[1];
    } else if (Steps == 2 || past_ == 1) {  // AB2
      const double r = h / (t_[0] - t_[1]);
      x.noalias() += s(h * (1.0 + 0.5 * r)) * f_[0] - s(h * 0.5 * r) * f_[1];
    } else {  // AB3
      if constexpr (Steps == 3) {
        const double a = t_[0] - t_[1], b = t_[1] - t_[2], c = a + b;
        const double h2 = h * h, h3 = h2 * h / 3.0;
        const double w0 = (h3 + 0.5 * (a + c) * h2 + a * c * h) / (a * c);
        const double w1 = -(h3 + 0.5 * c * h2) / (a * b);
        const double w2 = (h3 + 0.5 * a * h2) / (c * b);
        x.noalias() += s(w0) * f_[0] + s(w1) * f_[1] + s(w2) * f_[2];
      }
    }
    start_ = past_ == 0;
    past_ = std::min(past_ + 1, Steps - 1);
    dir_ = dir;
    t_end_ = t1;
  }

 private:
  // Whether a step from t0 continues the last one, which ended at t_end_: equal up to a few ulps,
  // so that loops computing t as k * h, or t + h, still continue.
  bool continues(double t0) const {
    return std::abs(t0 - t_end_) <= 4.0 * std::numeric_limits<double>::epsilon() * std::max(std::abs(t0), std::abs(t_end_));
  }

  std::array<Matrix<S>, Steps> f_;  ///< f_[k]: the drift at t_[k]; k = 0 is the newest
  std::array<double, Steps> t_{};
  int past_ = 0;        ///< past drifts that the next step may use
  bool start_ = false;  ///< the last step was the Euler start (the next one corrects it)
  int dir_ = 0;         ///< sign of the last step
  double t_end_ = 0.0;  ///< where the last step ended
};

/// Two-step Adams-Bashforth (order 2, one drift evaluation a step; Euler for the first step).
template <Real S = float>
using AdamsBashforth2Stepper = AdamsBashforthStepper<S, 2>;

/// Three-step Adams-Bashforth (order 3, one drift evaluation a step; Euler, then AB2, to start).
template <Real S = float>
using AdamsBashforth3Stepper = AdamsBashforthStepper<S, 3>;

}  // namespace flowmatch
