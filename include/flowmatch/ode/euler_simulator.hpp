#pragma once
/// \file
/// Explicit Euler simulation of an ODE over a user-given time grid.

#include "flowmatch/core/types.hpp"
#include "flowmatch/ode/concepts.hpp"
#include "flowmatch/ode/explicit_steppers.hpp"
#include "flowmatch/ode/simulator.hpp"

namespace flowmatch {

/// x_{k+1} = x_k + (t_{k+1} - t_k) u(x_k, t_k): first order, one drift evaluation per step. The
/// ODESimulator with an EulerStepper (see simulator.hpp for every overload: time grids, a number
/// of uniform steps, trajectories, the NFE count).
///
/// The grid `ts` (any Eigen vector, strictly increasing, finite) is shared by every sample of the
/// batch; the loop runs over its points (the reference implementation's `simulate` loops over the batch axis by
/// mistake). Holds a reference to the ODE, which must outlive it. After the first step at a batch
/// size, steps allocate nothing.
template <ODE O>
class EulerSimulator : public ODESimulator<O, EulerStepper<typename O::Scalar>> {
 public:
  using Scalar = typename O::Scalar;
  static constexpr int order = 1;

  explicit EulerSimulator(O& ode)
      : ODESimulator<O, EulerStepper<Scalar>>(ode, EulerStepper<Scalar>{}, "flowmatch::EulerSimulator") {}
};

}  // namespace flowmatch
