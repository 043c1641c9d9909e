#pragma once
/// \file
/// A mixture of diagonal Gaussians: p(x) = sum_k w_k N(x; mu_k, diag(s_k^2)).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"

namespace flowmatch {

/// p(x) = sum_k w_k N(x; mu_k, diag(s_k^2)), with means and stds stored one component per column.
/// Sampling picks a component by its weight, then draws from it; log_density uses a stable
/// log-sum-exp over components. The label of a draw (sample_labelled, and the condition of
/// sample_with_condition) is its component.
class GaussianMixture : public DistributionBase<GaussianMixture> {
 public:
  /// means: dim x K; stds: dim x K (every entry finite, > 0); weights: K entries, >= 0, not all
  /// zero (normalised here).
  GaussianMixture(Matrix<double> means, Matrix<double> stds, Vector<double> weights)
      : means_(std::move(means)), stds_(std::move(stds)), weights_(std::move(weights)) {
    constexpr const char* where = "flowmatch::GaussianMixture::GaussianMixture";
    detail::require_positive_count(where, "means.rows() (dimension)", means_.rows());
    detail::require_positive_count(where, "means.cols() (number of modes)", means_.cols());
    detail::require_rows(where, "stds", stds_.rows(), means_.rows());
    detail::require_cols(where, "stds", stds_.cols(), means_.cols());
    if (weights_.size() != means_.cols())
      detail::throw_dimension(where, "weights", "size", weights_.size(), means_.cols());
    if (!means_.allFinite()) detail::throw_invalid(where, "means", "(non-finite entry)", "must be finite");
    for (Index k = 0; k < stds_.size(); ++k)
      if (!(stds_.data()[k] > 0.0 && std::isfinite(stds_.data()[k])))
        detail::throw_invalid(where, "stds", stds_.data()[k], "every entry must be finite and > 0");
    double total = 0.0;
    for (Index k = 0; k < weights_.size(); ++k) {
      if (!(weights_(k) >= 0.0 && std::isfinite(weights_(k))))
        detail::throw_invalid(where, "weights", weights_(k), "every weight must be finite and >= 0");
      total += weights_(k);
    }
    if (!(total > 0.0)) detail::throw_invalid(where, "weights", total, "must not sum to 0");
    weights_ /= total;
    cumulative_.resize(static_cast<std::size_t>(nmodes()));
    double c = 0.0;
    for (Index k = 0; k < nmodes(); ++k) cumulative_[static_cast<std::size_t>(k)] = (c += weights_(k));
    cumulative_.back() = 1.0;
    log_norm_.resize(nmodes());
    for (Index k = 0; k < nmodes(); ++k)
      log_norm_(k) = std::log(weights_(k)) - stds_.col(k).array().log().sum() -
                     0.5 * static_cast<double>(dim()) * std::log(2.0 * std::numbers::pi);
  }

  /// K modes of equal weight and isotropic std at angles 2 pi k / K on a circle of radius `scale`
  /// around (x_offset, 0) (the reference implementation's GaussianMixture.symmetric_2D).
  static GaussianMixture symmetric_2D(Index nmodes, double std, double scale = 10.0,
                                      double x_offset = 0.0) {
    constexpr const char* where = "flowmatch::GaussianMixture::symmetric_2D";
    if (nmodes <= 0) detail::throw_invalid(where, "nmodes", nmodes, "must be at least 1");
    if (!std::isfinite(scale)) detail::throw_invalid(where, "scale", scale, "must be finite");
    if (!(std > 0.0 && std::isfinite(std))) detail::throw_invalid(where, "std", std, "must be finite and > 0");
    Matrix<double> means(2, nmodes);
    for (Index k = 0; k < nmodes; ++k) {
      const double angle = 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(nmodes);
      means(0, k) = scale * std::cos(angle) + x_offset;
      means(1, k) = scale * std::sin(angle);
    }
    return GaussianMixture(means, Matrix<double>::Constant(2, nmodes, std),
                           Vector<double>::Constant(nmodes, 1.0));
  }

  /// K modes of equal weight and isotropic std with means uniform in
  /// [-scale/2, scale/2]^2 + (x_offset, 0), drawn from `seed` (the reference implementation's random_2D).
  static GaussianMixture random_2D(Index nmodes, double std, double scale = 10.0,
                                   std::uint64_t seed = 0, double x_offset = 0.0) {
    constexpr const char* where = "flowmatch::GaussianMixture::random_2D";
    if (nmodes <= 0) detail::throw_invalid(where, "nmodes", nmodes, "must be at least 1");
    if (!(std::isfinite(scale) && scale >= 0.0)) detail::throw_invalid(where, "scale", scale, "must be finite and >= 0");
    if (!(std > 0.0 && std::isfinite(std))) detail::throw_invalid(where, "std", std, "must be finite and > 0");
    Rng rng(seed);
    Matrix<double> means(2, nmodes);
    for (Index k = 0; k < nmodes; ++k) {
      means(0, k) = (rng.uniform() - 0.5) * scale + x_offset;
      means(1, k) = (rng.uniform() - 0.5) * scale;
    }
    return GaussianMixture(means, Matrix<double>::Constant(2, nmodes, std),
                           Vector<double>::Constant(nmodes, 1.0));
  }

  Index dim() const { return means_.rows(); }
  Index nmodes() const { return means_.cols(); }
  const Matrix<double>& means() const { return means_; }
  const Matrix<double>& stds() const { return stds_; }
  const Vector<double>& weights() const { return weights_; }

  /// The number of components (labels of sample_labelled are 0 .. num_classes() - 1).
  Index num_classes() const { return nmodes(); }

  /// Writes log p(x_j) for each column x_j of the dim x n batch x into the n-vector `out`.
  template <class DX, class DOut>
  void log_density(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DOut>& out_) const {
    auto& out = detail::writable(out_);
    constexpr const char* where = "flowmatch::GaussianMixture::log_density";
    detail::require_rows(where, "x", x.rows(), dim());
    if (out.size() != x.cols()) detail::throw_dimension(where, "out", "size", out.size(), x.cols());
    for (Index j = 0; j < x.cols(); ++j) {
      double best = -std::numeric_limits<double>::infinity();
      for (Index k = 0; k < nmodes(); ++k) best = std::max(best, component_log_density(x, j, k));
      double sum = 0.0;
      for (Index k = 0; k < nmodes(); ++k) sum += std::exp(component_log_density(x, j, k) - best);
      out(j) = static_cast<typename DOut::Scalar>(best + std::log(sum));
    }
  }

  /// log p as a new vector.
  template <class DX>
  Vector<double> log_density(const Eigen::MatrixBase<DX>& x) const {
    Vector<double> out(x.cols());
    log_density(x, out);
    return out;
  }

  /// For each mode, how many columns of x lie within `radius_in_std` standard deviations of its
  /// mean (Mahalanobis distance with the mode's diagonal std); a point counts for its nearest mode.
  template <class DX>
  std::vector<Index> mode_counts(const Eigen::MatrixBase<DX>& x, double radius_in_std = 3.0) const {
    detail::require_rows("flowmatch::GaussianMixture::mode_counts", "x", x.rows(), dim());
    std::vector<Index> counts(static_cast<std::size_t>(nmodes()), 0);
    for (Index j = 0; j < x.cols(); ++j) {
      double best = std::numeric_limits<double>::infinity();
      Index best_k = -1;
      for (Index k = 0; k < nmodes(); ++k) {
        double q = 0.0;
        for (Index i = 0; i < dim(); ++i) {
          const double u = (static_cast<double>(x(i, j)) - means_(i, k)) / stds_(i, k);
          q += u * u;
        }
        if (q < best) best = q, best_k = k;
      }
      if (best_k >= 0 && best <= radius_in_std * radius_in_std) ++counts[static_cast<std::size_t>(best_k)];
    }
    return counts;
  }

  /// Number of modes holding at least `min_fraction` of the columns of x within `radius_in_std`
  /// stds of their mean (the example's "modes covered").
  template <class DX>
  Index modes_covered(const Eigen::MatrixBase<DX>& x, double min_fraction = 0.02,
                      double radius_in_std = 3.0) const {
    const std::vector<Index> counts = mode_counts(x, radius_in_std);
    Index covered = 0;
    for (Index c : counts)
      if (x.cols() > 0 && static_cast<double>(c) >= min_fraction * static_cast<double>(x.cols())) ++covered;
    return covered;
  }

 private:
  friend DistributionBase<GaussianMixture>;
  // A component k by its weight, then a draw of it; k is the label.
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out_, Index* labels) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::GaussianMixture::sample", "out", out.rows(), dim());
    using S = typename Derived::Scalar;
    for (Index j = 0; j < out.cols(); ++j) {
      const Index k = pick_component(rng);
      if (labels) labels[j] = k;
      for (Index i = 0; i < dim(); ++i)
        out(i, j) = static_cast<S>(means_(i, k) + stds_(i, k) * rng.normal());
    }
  }

  Index pick_component(Rng& rng) const {
    if (nmodes() == 1) return 0;
    const double u = rng.uniform();
    const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
    return std::min<Index>(static_cast<Index>(it - cumulative_.begin()), nmodes() - 1);
  }

  template <class DX>
  double component_log_density(const Eigen::MatrixBase<DX>& x, Index j, Index k) const {
    double q = 0.0;
    for (Index i = 0; i < dim(); ++i) {
      const double u = (static_cast<double>(x(i, j)) - means_(i, k)) / stds_(i, k);
      q += u * u;
    }
    return log_norm_(k) - 0.5 * q;
  }

  Matrix<double> means_;
  Matrix<double> stds_;
  Vector<double> weights_;
  std::vector<double> cumulative_;
  Vector<double> log_norm_;
};

}  // namespace flowmatch
