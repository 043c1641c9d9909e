#pragma once
/// \file
/// Reflow (Liu et al. 2023, "Flow straight and fast"): the pairs (x0, x1 = ODE(x0)) of a trained
/// flow, for a PairedPath on which a new, straighter flow is trained (and, with ConstantTime(0),
/// distilled to one step).
///
///   auto pairs = flowmatch::reflow_pairs(model, x0, 100);          // RK4, 100 steps
///   flowmatch::PairedPath<> path(pairs);                            // straight path, t ~ U[0, 1)
///   flowmatch::CFMTrainer trainer(path, new_model, adam, seed);     // 2-rectified flow
///   flowmatch::PairedPath<LinearAlpha, LinearBeta, ConstantTime> distil(pairs, {}, {}, ConstantTime(0));

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/concepts.hpp"
#include "flowmatch/ode/explicit_steppers.hpp"
#include "flowmatch/ode/learned_vector_field_ode.hpp"
#include "flowmatch/ode/simulator.hpp"
#include "flowmatch/path/paired_path.hpp"

namespace flowmatch {

/// The coupling of a trained flow: x1 = the flow of `field` from x0 (d x N source samples) at
/// t = 0 to t = 1 with `steps` steps of the fixed-step method `Method` (RK4 by default). Throws
/// InvalidArgument for steps < 1, NumericalError if an endpoint is not finite.
template <template <class> class Method = RK4Stepper, VectorField V, class DX>
PairedCoupling reflow_pairs(const V& field, const Eigen::MatrixBase<DX>& x0, Index steps) {
  constexpr const char* where = "flowmatch::reflow_pairs";
  if (steps < 1) detail::throw_invalid(where, "steps", steps, "must be at least 1");
  detail::require_rows(where, "x0", x0.rows(), static_cast<Index>(field.dim()));
  using S = typename V::Scalar;
  LearnedVectorFieldODE<V> ode(field);
  ODESimulator<LearnedVectorFieldODE<V>, Method<S>> sim(ode);
  Matrix<S> x = x0.template cast<S>();
  sim.simulate_inplace(x, steps);
  if (!x.allFinite()) throw NumericalError(std::string(where) + ": the flow produced a non-finite endpoint");
  return PairedCoupling(x0, x);
}

}  // namespace flowmatch
