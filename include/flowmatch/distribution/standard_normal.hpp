#pragma once
/// \file
/// The standard normal N(0, I): the default source of a GaussianConditionalPath.

#include <cmath>
#include <numbers>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"

namespace flowmatch {

/// N(0, I) in `dim` dimensions: samples with one `rng.normal()` per entry, column by column, and
/// evaluates log p(x) = -|x|^2 / 2 - dim log(2 pi) / 2.
class StandardNormal : public DistributionBase<StandardNormal> {
 public:
  /// Throws InvalidArgument unless dim >= 1.
  explicit StandardNormal(Index dim = 1) : dim_(dim) {
    detail::require_positive_count("flowmatch::StandardNormal::StandardNormal", "dim", dim);
  }

  Index dim() const { return dim_; }

  /// Writes log p(x_j) for each column x_j of the dim x n batch x into the n-vector `out`.
  template <class DX, class DOut>
  void log_density(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DOut>& out_) const {
    auto& out = detail::writable(out_);
    constexpr const char* where = "flowmatch::StandardNormal::log_density";
    detail::require_rows(where, "x", x.rows(), dim());
    if (out.size() != x.cols()) detail::throw_dimension(where, "out", "size", out.size(), x.cols());
    const double norm = -0.5 * static_cast<double>(dim()) * std::log(2.0 * std::numbers::pi);
    for (Index j = 0; j < x.cols(); ++j)
      out(j) = static_cast<typename DOut::Scalar>(norm - 0.5 * x.col(j).template cast<double>().squaredNorm());
  }

 private:
  friend DistributionBase<StandardNormal>;
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out_, Index* /*labels: no classes*/) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::StandardNormal::sample", "out", out.rows(), dim());
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j)
      for (Index i = 0; i < dim(); ++i) out(i, j) = static_cast<S>(rng.normal());
  }

  Index dim_;
};

}  // namespace flowmatch
