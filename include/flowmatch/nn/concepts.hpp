#pragma once
/// \file
/// Concepts for learned vector fields u_theta(x, t) and conditional ones u_theta(x, t | c).

#include <concepts>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// A vector field that can be evaluated on a batch. Valid expressions, for `const V v`, a
/// `V::Workspace ws`, a d x n batch `x` of `V::Scalar`, a time `t` (a number or one per column) and
/// a writable d x n `out`: `v.dim()` -> Index; `v.forward(x, t, out, ws)`.
template <class V>
concept VectorField =
    requires(const V& v, typename V::Workspace& ws, const Matrix<typename V::Scalar>& x,
             const RowVector<typename V::Scalar>& tv, double t, Matrix<typename V::Scalar>& out) {
      typename V::Scalar;
      { v.dim() } -> std::convertible_to<Index>;
      v.forward(x, t, out, ws);
      v.forward(x, tv, out, ws);
    };

/// A vector field that a CFM trainer can fit. Additionally: `v.forward_train(x, t, ws)` returns the
/// output and keeps what backward needs; `v.backward(grad_out, ws)` writes dLoss/dparameters into
/// `v.gradients()`; `v.parameters()` and `v.gradients()` are flat vectors of equal size.
template <class V>
concept TrainableVectorField =
    VectorField<V> &&
    requires(V& v, typename V::Workspace& ws, const Matrix<typename V::Scalar>& x,
             const RowVector<typename V::Scalar>& tv) {
      { v.forward_train(x, tv, ws) } -> std::convertible_to<const Matrix<typename V::Scalar>&>;
      v.backward(x, ws);
      { v.parameters() } -> std::convertible_to<Vector<typename V::Scalar>&>;
      { v.gradients() } -> std::convertible_to<Vector<typename V::Scalar>&>;
    };

/// A vector field conditioned on a per-sample condition, u_theta(x, t | c). Valid expressions, as
/// for VectorField, with a `ConditionBatch<V::Scalar> c` of n samples: `v.condition_kind()` ->
/// ConditionKind (Label or Vector); `v.forward(x, t, c, out, ws)` evaluates u_theta(x, t | c_j)
/// per column, and u_theta(x, t | none) where c.present(j) is 0.
template <class V>
concept ConditionalField =
    requires(const V& v, typename V::Workspace& ws, const Matrix<typename V::Scalar>& x,
             const RowVector<typename V::Scalar>& tv, double t, const ConditionBatch<typename V::Scalar>& c,
             Matrix<typename V::Scalar>& out) {
      typename V::Scalar;
      { v.dim() } -> std::convertible_to<Index>;
      { v.condition_kind() } -> std::same_as<ConditionKind>;
      v.forward(x, t, c, out, ws);
      v.forward(x, tv, c, out, ws);
    };

/// A conditional vector field that a CFM trainer can fit: as TrainableVectorField, with the
/// condition passed to `v.forward_train(x, t, c, ws)` (and, when present, to the fused
/// `v.mse_loss_and_gradient(x, t, c, target, ws)`).
template <class V>
concept TrainableConditionalField =
    ConditionalField<V> &&
    requires(V& v, typename V::Workspace& ws, const Matrix<typename V::Scalar>& x,
             const RowVector<typename V::Scalar>& tv, const ConditionBatch<typename V::Scalar>& c) {
      { v.forward_train(x, tv, c, ws) } -> std::convertible_to<const Matrix<typename V::Scalar>&>;
      v.backward(x, ws);
      { v.parameters() } -> std::convertible_to<Vector<typename V::Scalar>&>;
      { v.gradients() } -> std::convertible_to<Vector<typename V::Scalar>&>;
    };

}  // namespace flowmatch
