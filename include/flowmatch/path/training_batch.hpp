#pragma once
/// \file
/// The preallocated buffers of one Flow Matching training batch.

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// One batch of regression data for conditional flow matching, one sample per column:
/// z ~ p_data, t ~ U[0, 1), x ~ p_t(. | z) and the regression target u = u_t(x | z), and, when
/// the data are (x, condition) pairs, each sample's condition (a class label or a context vector,
/// with its presence mask: see ConditionBatch).
/// Sized once by resize() (the path sizes the condition's buffers, in place, on its first batch);
/// a path fills it in place, so a training step allocates nothing.
template <Real S = float>
struct TrainingBatch {
  Matrix<S> z;     ///< dim x n conditioning samples from p_data
  RowVector<S> t;  ///< 1 x n times
  Matrix<S> x;     ///< dim x n points on the conditional path
  Matrix<S> u;     ///< dim x n conditional vector field at (x, t) given z
  ConditionBatch<S> condition;  ///< the condition of each sample of z (kind None for plain data)
  /// Each sample's loss weight w(t), filled by paths whose time density is weighted
  /// (WeightedTime); empty (size 0) otherwise, and the loss is then the plain mean.
  RowVector<S> weight;

  TrainingBatch() = default;
  TrainingBatch(Index dim, Index n) { resize(dim, n); }

  void resize(Index dim, Index n) {
    constexpr const char* where = "flowmatch::TrainingBatch::resize";
    detail::require_positive_count(where, "dim", dim);
    detail::require_positive_count(where, "n (batch size)", n);
    if (z.rows() == dim && z.cols() == n) return;
    z.resize(dim, n);
    t.resize(n);
    x.resize(dim, n);
    u.resize(dim, n);
  }
  Index dim() const { return z.rows(); }
  Index size() const { return z.cols(); }
};

}  // namespace flowmatch
