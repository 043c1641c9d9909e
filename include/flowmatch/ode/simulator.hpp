#pragma once
/// \file
/// ODESimulator: integrates a batch of an ODE with any stepper, over a time grid or a number of
/// uniform steps, returning the final state or the whole trajectory.

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/ode/concepts.hpp"

namespace flowmatch {

/// Simulates dx/dt = f(x, t) for the ODE `O` with the stepper `St` (EulerStepper, MidpointStepper,
/// HeunStepper, RK4Stepper, the multistep AdamsBashforth2Stepper and AdamsBashforth3Stepper,
/// Dopri5Stepper, or your own satisfying the Stepper concept).
///
/// - `simulate_inplace(x, ts)`, `simulate(x0, ts)`, `simulate_with_trajectory(x0, ts)` take a time
///   grid `ts` (strictly increasing, finite). A fixed-step stepper makes one step per interval; an
///   adaptive one integrates each interval with its own steps (ts are then output times only).
/// - With a fixed-step stepper, `simulate*(x, steps)` and `simulate*(x, t0, t1, steps)` make
///   `steps` uniform steps on [0, 1] or [t0, t1] without building a grid.
/// - `nfe()` is the number of drift evaluations of the last simulation.
/// - Every simulate* call starts with the stepper's reset() when it has one (a multistep stepper's
///   history of drifts); advance() and step() continue it.
///
/// Holds a reference to the ODE (which must outlive it) and owns the stepper, whose buffers are
/// sized on the first step at a batch shape: later steps and simulate_inplace allocate nothing.
template <ODE O, class St>
  requires Stepper<St, O>
class ODESimulator {
 public:
  using Scalar = typename O::Scalar;
  using stepper_type = St;

  explicit ODESimulator(O& ode, St stepper = St{}) : ode_(ode), stepper_(std::move(stepper)) {}

  /// Advances x in place from t0 to t1 (one step for a fixed-step stepper); returns its NFE.
  template <class DX>
  Index advance(const Eigen::MatrixBase<DX>& x, double t0, double t1) {
    return stepper_.advance(ode_, x, t0, t1);
  }

  /// One step of signed size h from t (fixed-step steppers): x <- Phi_h(x, t).
  template <class DX>
    requires FixedStepper<St, O>
  void step(const Eigen::MatrixBase<DX>& x, double t, double h) {
    stepper_.advance(ode_, x, t, t + h);
  }

  /// Integrates x (d x n) in place from ts[0] to ts[last]; returns the NFE (also kept in nfe()).
  template <class DX, class DT>
  Index simulate_inplace(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DT>& ts) {
    check_grid(x, ts, "simulate_inplace", "x");
    start_simulation();
    for (Index k = 0; k + 1 < ts.size(); ++k)
      nfe_ += stepper_.advance(ode_, x, static_cast<double>(ts(k)), static_cast<double>(ts(k + 1)));
    return nfe_;
  }

  /// `steps` uniform steps from t0 to t1 (t1 > t0), in place; returns the NFE.
  template <class DX>
    requires FixedStepper<St, O>
  Index simulate_inplace(const Eigen::MatrixBase<DX>& x, double t0, double t1, Index steps) {
    check_steps(x, t0, t1, steps, "simulate_inplace", "x");
    start_simulation();
    for (Index k = 0; k < steps; ++k) nfe_ += stepper_.advance(ode_, x, uniform_time(t0, t1, steps, k), uniform_time(t0, t1, steps, k + 1));
    return nfe_;
  }

  /// `steps` uniform steps from 0 to 1, in place; returns the NFE.
  template <class DX>
    requires FixedStepper<St, O>
  Index simulate_inplace(const Eigen::MatrixBase<DX>& x, Index steps) {
    return simulate_inplace(x, 0.0, 1.0, steps);
  }

  /// The state at ts[last] of the flow started from x0 (d x n) at ts[0].
  template <class DX, class DT>
  Matrix<Scalar> simulate(const Eigen::MatrixBase<DX>& x0, const Eigen::MatrixBase<DT>& ts) {
    check_grid(x0, ts, "simulate", "x0");
    Matrix<Scalar> x = x0.template cast<Scalar>();
    simulate_inplace(x, ts);
    return x;
  }

  template <class DX>
    requires FixedStepper<St, O>
  Matrix<Scalar> simulate(const Eigen::MatrixBase<DX>& x0, double t0, double t1, Index steps) {
    check_steps(x0, t0, t1, steps, "simulate", "x0");
    Matrix<Scalar> x = x0.template cast<Scalar>();
    simulate_inplace(x, t0, t1, steps);
    return x;
  }

  template <class DX>
    requires FixedStepper<St, O>
  Matrix<Scalar> simulate(const Eigen::MatrixBase<DX>& x0, Index steps) {
    return simulate(x0, 0.0, 1.0, steps);
  }

  /// The state at every point of ts: element k is the d x n batch at ts[k] (element 0 is x0).
  template <class DX, class DT>
  std::vector<Matrix<Scalar>> simulate_with_trajectory(const Eigen::MatrixBase<DX>& x0,
                                                       const Eigen::MatrixBase<DT>& ts) {
    check_grid(x0, ts, "simulate_with_trajectory", "x0");
    std::vector<Matrix<Scalar>> traj;
    traj.reserve(static_cast<std::size_t>(ts.size()));
    traj.push_back(x0.template cast<Scalar>());
    start_simulation();
    for (Index k = 0; k + 1 < ts.size(); ++k) {
      traj.push_back(traj.back());
      nfe_ += stepper_.advance(ode_, traj.back(), static_cast<double>(ts(k)), static_cast<double>(ts(k + 1)));
    }
    return traj;
  }

  /// The state after each of `steps` uniform steps on [t0, t1] (steps + 1 batches, the first x0).
  template <class DX>
    requires FixedStepper<St, O>
  std::vector<Matrix<Scalar>> simulate_with_trajectory(const Eigen::MatrixBase<DX>& x0, double t0, double t1,
                                                       Index steps) {
    check_steps(x0, t0, t1, steps, "simulate_with_trajectory", "x0");
    std::vector<Matrix<Scalar>> traj;
    traj.reserve(static_cast<std::size_t>(steps + 1));
    traj.push_back(x0.template cast<Scalar>());
    start_simulation();
    for (Index k = 0; k < steps; ++k) {
      traj.push_back(traj.back());
      nfe_ += stepper_.advance(ode_, traj.back(), uniform_time(t0, t1, steps, k), uniform_time(t0, t1, steps, k + 1));
    }
    return traj;
  }

  template <class DX>
    requires FixedStepper<St, O>
  std::vector<Matrix<Scalar>> simulate_with_trajectory(const Eigen::MatrixBase<DX>& x0, Index steps) {
    return simulate_with_trajectory(x0, 0.0, 1.0, steps);
  }

  /// Drift evaluations of the last simulate* call.
  Index nfe() const { return nfe_; }
  O& ode() { return ode_; }
  St& stepper() { return stepper_; }
  const St& stepper() const { return stepper_; }

 protected:
  /// For derived simulators (EulerSimulator): the class name their error messages give.
  ODESimulator(O& ode, St stepper, const char* class_name)
      : ode_(ode), stepper_(std::move(stepper)), class_name_(class_name) {}

 private:
  const char* class_name() const { return class_name_; }

  // A simulation starts clean: no NFE yet, and a stepper with a history (Adams-Bashforth) forgets
  // the last simulation's drifts, even when this one starts at the time where that one ended.
  void start_simulation() {
    nfe_ = 0;
    if constexpr (requires { stepper_.reset(); }) stepper_.reset();
  }

  static double uniform_time(double t0, double t1, Index steps, Index k) {
    if (k == steps) return t1;
    return t0 + (t1 - t0) * static_cast<double>(k) / static_cast<double>(steps);
  }

  template <class DX>
  void check_batch(const Eigen::MatrixBase<DX>& x, const std::string& where, const char* arg) const {
    detail::require_rows(where, arg, x.rows(), static_cast<long long>(ode_.dim()));
    if (x.cols() <= 0) detail::throw_invalid(where, std::string(arg) + ".cols() (batch size)", x.cols(), "must be at least 1");
  }

  template <class DX, class DT>
  void check_grid(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DT>& ts, const char* fn, const char* arg) const {
    if (x.rows() == ode_.dim() && x.cols() > 0 && grid_ok(ts)) return;  // no string is built on the hot path
    const std::string where = std::string(class_name()) + "::" + fn;
    check_batch(x, where, arg);
    detail::require_time_grid(where, "ts", ts);
  }

  template <class DX>
  void check_steps(const Eigen::MatrixBase<DX>& x, double t0, double t1, Index steps, const char* fn,
                   const char* arg) const {
    if (x.rows() == ode_.dim() && x.cols() > 0 && std::isfinite(t0) && std::isfinite(t1) && t1 > t0 && steps >= 1) return;
    const std::string where = std::string(class_name()) + "::" + fn;
    check_batch(x, where, arg);
    if (!std::isfinite(t0)) detail::throw_invalid(where, "t0", t0, "must be finite");
    if (!(std::isfinite(t1) && t1 > t0)) detail::throw_invalid(where, "t1", t1, "must be finite and > t0");
    detail::throw_invalid(where, "steps", steps, "must be at least 1");
  }

  template <class DT>
  static bool grid_ok(const Eigen::MatrixBase<DT>& ts) {
    if (ts.size() < 1) return false;
    for (Index i = 0; i < ts.size(); ++i) {
      const double v = static_cast<double>(ts(i));
      if (!std::isfinite(v) || (i > 0 && !(v > static_cast<double>(ts(i - 1))))) return false;
    }
    return true;
  }

  O& ode_;
  St stepper_;
  Index nfe_ = 0;
  const char* class_name_ = "flowmatch::ODESimulator";
};

/// An ODESimulator with the stepper template `Method` at the ODE's scalar type:
/// `auto sim = make_simulator<RK4Stepper>(ode);` or `make_simulator<Dopri5Stepper>(ode, options)`.
template <template <class> class Method, ODE O, class... Args>
ODESimulator<O, Method<typename O::Scalar>> make_simulator(O& ode, Args&&... args) {
  return ODESimulator<O, Method<typename O::Scalar>>(ode, Method<typename O::Scalar>(std::forward<Args>(args)...));
}

}  // namespace flowmatch
