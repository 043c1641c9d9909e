#pragma once
/// \file
/// A Gaussian with diagonal covariance: N(mean, diag(std^2)).

#include <cmath>
#include <numbers>
#include <utility>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"

namespace flowmatch {

/// N(mean, diag(std^2)): samples x = mean + std * eps and evaluates
/// log p(x) = sum_i [ -(x_i - mean_i)^2 / (2 std_i^2) - log std_i - log(2 pi) / 2 ].
class Gaussian : public DistributionBase<Gaussian> {
 public:
  /// mean and std have one entry per dimension; every std must be finite and > 0.
  Gaussian(Vector<double> mean, Vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {
    constexpr const char* where = "flowmatch::Gaussian::Gaussian";
    detail::require_positive_count(where, "mean.size()", mean_.size());
    detail::require_rows(where, "std", std_.size(), mean_.size());
    for (Index i = 0; i < mean_.size(); ++i) {
      if (!std::isfinite(mean_(i))) detail::throw_invalid(where, "mean", mean_(i), "must be finite");
      if (!(std_(i) > 0.0 && std::isfinite(std_(i))))
        detail::throw_invalid(where, "std", std_(i), "every entry must be finite and > 0");
    }
    log_norm_ = -std_.array().log().sum() -
                0.5 * static_cast<double>(dim()) * std::log(2.0 * std::numbers::pi);
  }

  /// N(0, std^2 I) in `dim` dimensions (the reference implementation's Gaussian.standard).
  static Gaussian standard(Index dim, double std = 1.0) {
    if (dim <= 0) detail::throw_invalid("flowmatch::Gaussian::standard", "dim", dim, "must be at least 1");
    return Gaussian(Vector<double>::Zero(dim), Vector<double>::Constant(dim, std));
  }

  Index dim() const { return mean_.size(); }
  const Vector<double>& mean() const { return mean_; }
  const Vector<double>& std() const { return std_; }

  /// Writes log p(x_j) for each column x_j of the dim x n batch x into the n-vector `out`.
  template <class DX, class DOut>
  void log_density(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DOut>& out_) const {
    auto& out = detail::writable(out_);
    constexpr const char* where = "flowmatch::Gaussian::log_density";
    detail::require_rows(where, "x", x.rows(), dim());
    if (out.size() != x.cols()) detail::throw_dimension(where, "out", "size", out.size(), x.cols());
    for (Index j = 0; j < x.cols(); ++j) {
      double q = 0.0;
      for (Index i = 0; i < dim(); ++i) {
        const double u = (static_cast<double>(x(i, j)) - mean_(i)) / std_(i);
        q += u * u;
      }
      out(j) = static_cast<typename DOut::Scalar>(log_norm_ - 0.5 * q);
    }
  }

  /// log p as a new vector.
  template <class DX>
  Vector<double> log_density(const Eigen::MatrixBase<DX>& x) const {
    Vector<double> out(x.cols());
    log_density(x, out);
    return out;
  }

 private:
  friend DistributionBase<Gaussian>;
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out_, Index* /*labels: no classes*/) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::Gaussian::sample", "out", out.rows(), dim());
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j)
      for (Index i = 0; i < dim(); ++i)
        out(i, j) = static_cast<S>(mean_(i) + std_(i) * rng.normal());
  }

  Vector<double> mean_;
  Vector<double> std_;
  double log_norm_ = 0.0;
};

}  // namespace flowmatch
