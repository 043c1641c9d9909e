#pragma once
/// \file
/// The SDE concept: dX = f(X, t) dt + g(X, t) dW with diagonal diffusion, on batches.

#include <concepts>

#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Valid expressions, for an SDE `e` with scalar `E::Scalar`, a d x n state `x`, a time `t` and a
/// writable d x n `out`: `e.dim()` -> Index; `e.drift(x, t, out)` writes f(x, t);
/// `e.diffusion(x, t, out)` writes the diagonal diffusion g(x, t) entrywise (noise of coordinate i
/// of sample j is scaled by out(i, j)). Both may use buffers inside `e` (not const).
template <class E>
concept SDE = requires(E& e, const E& ce, const Matrix<typename E::Scalar>& x, double t,
                       Matrix<typename E::Scalar>& out) {
  typename E::Scalar;
  { ce.dim() } -> std::convertible_to<Index>;
  e.drift(x, t, out);
  e.diffusion(x, t, out);
};

}  // namespace flowmatch
