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
