#pragma once
/// \file
/// The ODE concept: dx/dt = u(x, t) on batches, one sample per column.

#include <concepts>

#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Valid expressions, for an ODE `o` with scalar `O::Scalar`, a d x n state `x`, a time `t` and a
/// writable d x n `out`: `o.dim()` -> Index; `o.drift(x, t, out)` writes u(x, t). `drift` may use
/// buffers inside `o` (it is not const), so one ODE object serves one thread.
template <class O>
concept ODE = requires(O& o, const O& co, const Matrix<typename O::Scalar>& x, double t,
                       Matrix<typename O::Scalar>& out) {
  typename O::Scalar;
  { co.dim() } -> std::convertible_to<Index>;
  o.drift(x, t, out);
};

}  // namespace flowmatch

namespace flowmatch {

/// A stepper advances a batch of an ODE from one time to another (either direction). Valid
/// expressions, for a stepper `s` of type St, an ODE `o` of type O with `St::Scalar` equal to
/// `O::Scalar`, a writable d x n state `x` and times `t0`, `t1`:
/// - `s.advance(o, x, t0, t1)` -> Index: moves x from t0 to t1 in place and returns the number of
///   drift evaluations it made (NFE);
/// - `St::adaptive` -> bool: whether the stepper chooses its own substeps between t0 and t1.
/// A fixed-step stepper (adaptive == false) makes exactly one step of its method per call and also
/// has `St::order` (the global order of accuracy) and `St::stages` (drift evaluations per step).
template <class St, class O>
concept Stepper = ODE<O> && std::same_as<typename St::Scalar, typename O::Scalar> &&
                  requires(St& s, O& o, Matrix<typename O::Scalar>& x, double t0, double t1) {
                    { St::adaptive } -> std::convertible_to<bool>;
                    { s.advance(o, x, t0, t1) } -> std::convertible_to<Index>;
                  };

/// A Stepper that makes one step of a fixed method per advance() call (Euler, midpoint, Heun, RK4;
/// the multistep AB2 and AB3, which also reuse the drifts of the steps before when a call continues
/// the last one, and provide reset()).
template <class St, class O>
concept FixedStepper = Stepper<St, O> && !St::adaptive && requires {
  { St::order } -> std::convertible_to<int>;
  { St::stages } -> std::convertible_to<int>;
};

/// A Stepper that controls its own step size between the two times of advance() (Dormand-Prince).
template <class St, class O>
concept AdaptiveStepper = Stepper<St, O> && St::adaptive;

}  // namespace flowmatch
