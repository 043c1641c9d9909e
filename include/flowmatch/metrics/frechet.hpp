#pragma once
/// \file
/// The Frechet distance between Gaussians fitted to two sets of feature vectors: FID's formula,
/// for any feature extractor (nn/mlp_classifier.hpp's features() in this library).

#include <algorithm>
#include <cmath>
#include <string>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Mean and (unbiased, 1 / (count - 1)) covariance of a set of feature vectors, in double.
struct GaussianMoments {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
  Index count = 0;  ///< how many vectors the moments were estimated from (0: given, not estimated)
};

/// Accumulates the mean and covariance of feature vectors arriving in batches (d x m, one vector
/// per column, any scalar type), in double: each batch's own centred moments are merged into the
/// running ones (Chan, Golub and LeVeque's pairwise update), which keeps the precision of a
/// two-pass computation however many batches arrive. Allocates only when a batch is wider than
/// every one before. MomentAccumulator is BasicMomentAccumulator<>, a class template of nothing
/// so that its Eigen code is compiled only where it is used (issue 20).
template <class Void = void>
class BasicMomentAccumulator {
  using VectorXd = detail::dependent_t<Eigen::VectorXd, Void>;
  using MatrixXd = detail::dependent_t<Eigen::MatrixXd, Void>;

 public:
  explicit BasicMomentAccumulator(Index dim) {
    if (dim < 1) detail::throw_invalid("flowmatch::MomentAccumulator::MomentAccumulator", "dim", dim, "must be at least 1");
    mean_ = VectorXd::Zero(dim);
    m2_ = MatrixXd::Zero(dim, dim);
    batch_mean_.resize(dim);
  }

  Index dim() const { return mean_.size(); }
  Index count() const { return count_; }

  /// Adds the columns of `batch` (dim() x m, m >= 0). Throws DimensionMismatch for a wrong row
  /// count and NumericalError (adding nothing) when the batch holds a NaN or an infinity.
  template <class D>
  void add(const Eigen::MatrixBase<D>& batch) {
    constexpr const char* where = "flowmatch::MomentAccumulator::add";
    detail::require_rows(where, "batch", batch.rows(), dim());
    const Index m = batch.cols();
    if (m == 0) return;
    if (!batch.allFinite())
      throw NumericalError(std::string(where) + ": argument 'batch' holds a NaN or an infinity");
    if (centred_.cols() < m) centred_.resize(dim(), m);
    auto c = centred_.leftCols(m);
    c = batch.template cast<double>();
    batch_mean_ = c.rowwise().sum() / static_cast<double>(m);
    c.colwise() -= batch_mean_;
    const double na = static_cast<double>(count_), nb = static_cast<double>(m), n = na + nb;
    // M2 = M2_a + M2_b + delta delta^T na nb / n, mean = mean_a + delta nb / n, delta = mean_b - mean_a.
    m2_.noalias() += c * c.transpose();
    batch_mean_ -= mean_;  // now delta
    m2_.noalias() += (na * nb / n) * (batch_mean_ * batch_mean_.transpose());
    mean_ += (nb / n) * batch_mean_;
    count_ += m;
  }

  /// The moments so far; needs count() >= 2 (InvalidArgument otherwise).
  GaussianMoments moments() const {
    if (count_ < 2)
      detail::throw_invalid("flowmatch::MomentAccumulator::moments", "count()", count_,
                            "a covariance needs at least 2 vectors");
    GaussianMoments g;
    g.mean = mean_;
    g.covariance = (m2_ + m2_.transpose()) * (0.5 / static_cast<double>(count_ - 1));
    g.count = count_;
    return g;
  }

 private:
  VectorXd mean_;
  MatrixXd m2_;  ///< sum of outer products of the centred vectors
  VectorXd batch_mean_;
  MatrixXd centred_;
  Index count_ = 0;
};
using MomentAccumulator = BasicMomentAccumulator<>;

/// Mean and unbiased covariance of the columns of `features` (d x n, n >= 2), in double.
template <class D>
GaussianMoments gaussian_moments(const Eigen::MatrixBase<D>& features) {
  constexpr const char* where = "flowmatch::gaussian_moments";
  if (features.rows() < 1) detail::throw_invalid(where, "features.rows() (dimension)", features.rows(), "must be at least 1");
  if (features.cols() < 2)
    detail::throw_invalid(where, "features.cols() (number of vectors)", features.cols(),
                          "a covariance needs at least 2 vectors");
  if (!features.allFinite()) throw NumericalError(std::string(where) + ": argument 'features' holds a NaN or an infinity");
  MomentAccumulator acc(features.rows());
  constexpr Index kChunk = 1024;  // bounds the double copy whatever n
  for (Index j0 = 0; j0 < features.cols(); j0 += kChunk)
    acc.add(features.middleCols(j0, std::min(kChunk, features.cols() - j0)));
  return acc.moments();
}

namespace detail {

template <class Void = void>
void check_moments(const char* where, const char* arg, const GaussianMoments& g_) {
  const dependent_t<GaussianMoments, Void>& g = g_;
  const std::string a(arg);
  if (g.mean.size() < 1) throw_invalid(where, a + ".mean.size()", g.mean.size(), "must be at least 1");
  require_rows(where, (a + ".covariance").c_str(), g.covariance.rows(), g.mean.size());
  if (g.covariance.cols() != g.mean.size())
    throw_dimension(where, a + ".covariance", "columns", g.covariance.cols(), g.mean.size());
  if (!g.mean.allFinite() || !g.covariance.allFinite())
    throw NumericalError(std::string(where) + ": argument '" + a + "' holds a NaN or an infinity");
  const double scale = g.covariance.cwiseAbs().maxCoeff();
  const double asym = (g.covariance - g.covariance.transpose()).cwiseAbs().maxCoeff();
  if (asym > 1e-9 * scale)
    throw_invalid(where, a + ".covariance (largest |C - C^T| entry)", asym, "a covariance must be symmetric");
}

/// The symmetric positive semi-definite square root V sqrt(L) V^T of the covariance C, with
/// eigenvalues that rounding made slightly negative clamped to 0; a clearly negative eigenvalue
/// (below -1e-9 of the largest magnitude) throws InvalidArgument.
/// A template only so that the eigen-solver is compiled where it is used (see frechet_distance).
template <class Void = void>
Eigen::MatrixXd psd_sqrt(const char* where, const char* arg, const Eigen::MatrixXd& c) {
  const Eigen::SelfAdjointEigenSolver<dependent_t<Eigen::MatrixXd, Void>> es(c);
  if (es.info() != Eigen::Success)
    throw NumericalError(std::string(where) + ": the eigen-decomposition of '" + arg + "' did not converge");
  const Eigen::VectorXd& l = es.eigenvalues();  // ascending
  const double largest = std::max(std::abs(l(0)), std::abs(l(l.size() - 1)));
  if (l(0) < -1e-9 * largest)
    throw_invalid(where, std::string(arg) + " (smallest eigenvalue)", l(0),
                  "a covariance must be positive semi-definite");
  const Eigen::VectorXd s = l.cwiseMax(0.0).cwiseSqrt();
  return es.eigenvectors() * s.asDiagonal() * es.eigenvectors().transpose();
}

}  // namespace detail

/// The Frechet (2-Wasserstein) distance, squared, between the Gaussians N(mu_a, C_a), N(mu_b, C_b):
///   |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2}),
/// the formula of FID. Both square roots come from Eigen's SelfAdjointEigenSolver (symmetric
/// matrices, real eigenvalues), with eigenvalues that rounding pushed below zero clamped to 0, so
/// the result is never a NaN; a result below 0 from rounding is returned as 0. In double.
/// Throws DimensionMismatch when the dimensions differ, NumericalError for non-finite moments,
/// InvalidArgument for a covariance that is not symmetric positive semi-definite.
/// O(d^3): fine for the few hundred features of a classifier's last hidden layer.
/// A template (of nothing: call it as a function) so that Eigen's eigen-solver, some 5 s of
/// compile time with g++, is compiled only in the files that call it, not in every file that
/// includes <flowmatch.hpp>.
template <class Void = void>
double frechet_distance(const GaussianMoments& a_, const GaussianMoments& b_) {
  constexpr const char* where = "flowmatch::frechet_distance";
  using MatrixXd = detail::dependent_t<Eigen::MatrixXd, Void>;
  const detail::dependent_t<GaussianMoments, Void>& a = a_;
  const detail::dependent_t<GaussianMoments, Void>& b = b_;
  detail::check_moments<Void>(where, "a", a);
  detail::check_moments<Void>(where, "b", b);
  if (b.mean.size() != a.mean.size()) detail::throw_dimension(where, "b", "dimension", b.mean.size(), a.mean.size());
  const MatrixXd ra = detail::psd_sqrt<Void>(where, "a.covariance", a.covariance);
  detail::psd_sqrt<Void>(where, "b.covariance", b.covariance);  // validates b (positive semi-definite)
  MatrixXd m = ra * b.covariance * ra;
  m = 0.5 * (m + m.transpose());
  const Eigen::SelfAdjointEigenSolver<MatrixXd> es(m, Eigen::EigenvaluesOnly);
  if (es.info() != Eigen::Success)
    throw NumericalError(std::string(where) + ": the eigen-decomposition of C_a^{1/2} C_b C_a^{1/2} did not converge");
  const double tr_sqrt = es.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  const double d = (a.mean - b.mean).squaredNorm() + a.covariance.trace() + b.covariance.trace() - 2.0 * tr_sqrt;
  return std::max(d, 0.0);
}

/// frechet_distance of the Gaussians fitted (gaussian_moments) to the columns of `a` (d x n) and
/// `b` (d x m), n, m >= 2.
template <class DA, class DB>
double frechet_distance(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b) {
  if (b.rows() != a.rows()) detail::throw_dimension("flowmatch::frechet_distance", "b", "rows (dimension)", b.rows(), a.rows());
  return frechet_distance(gaussian_moments(a), gaussian_moments(b));
}

}  // namespace flowmatch
