#pragma once
/// \file
/// The optimizer concept: an update policy over one flat parameter vector and its gradient.

#include <concepts>

#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Valid expressions, for an optimizer `o` with scalar type `O::Scalar` and flat vectors `p`
/// (parameters, updated in place) and `g` (gradients) of equal size:
/// - `o.step(p, g)`: one update; per-parameter state is sized on the first call (or by
///   `o.reset(n)`), so later calls allocate nothing;
/// - `o.learning_rate()` / `o.set_learning_rate(lr)`;
/// - `o.steps_taken()` -> the number of updates so far.
/// `sgd.hpp` is the simplest complete example to copy.
///
/// Saving: an optimizer that also has the state protocol of core/state.hpp (`Stateful`:
/// save_state / load_state, and `state_scope = "optimizer"`) is saved and restored by
/// save_state_parts / load_state_parts and by io/'s checkpoint files with no change to io/ (and
/// inside ScheduledOptimizer); tests/extend/user_optimizer_test.cpp is a complete example.
template <class O>
concept Optimizer =
    requires(O& o, const O& co, Vector<typename O::Scalar>& p, const Vector<typename O::Scalar>& g, double lr) {
      typename O::Scalar;
      o.step(p, g);
      o.reset(p.size());
      { co.learning_rate() } -> std::convertible_to<double>;
      o.set_learning_rate(lr);
      { co.steps_taken() } -> std::convertible_to<long long>;
    };

}  // namespace flowmatch
