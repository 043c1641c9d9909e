#pragma once
/// \file
/// The independent coupling: x0 and x1 drawn independently and paired as drawn (the reference implementation's).

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// pi(x0, x1) = p_source(x0) p_data(x1): leaves the pairs as drawn. GaussianConditionalPath's
/// default; with it and the StandardNormal source, a training batch is bit-identical to the reference implementation's
/// sampling order.
struct IndependentCoupling {
  template <class D0, class D1>
  void pair(Rng& /*rng*/, const Eigen::MatrixBase<D0>& x0, const Eigen::MatrixBase<D1>& x1) const {
    constexpr const char* where = "flowmatch::IndependentCoupling::pair";
    detail::require_rows(where, "x1", x1.rows(), x0.rows());
    detail::require_cols(where, "x1", x1.cols(), x0.cols());
  }
};

}  // namespace flowmatch
