#pragma once
/// \file
/// Measures of a classifier (MLPClassifier, or any type with the same input_dim(), num_classes(),
/// feature_dim(), logits(x, out, ws), features(x, out, ws) and Workspace): the accuracy on labelled
/// samples, and the moments of its features that a Frechet distance compares (metrics/frechet.hpp).

#include <algorithm>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/metrics/frechet.hpp"
#include "flowmatch/nn/softmax_cross_entropy.hpp"

namespace flowmatch {

/// Fraction in [0, 1] of the columns of x that `clf` assigns to their label, evaluated `batch`
/// columns at a time (memory bounded whatever x.cols()). Labels are checked as in training.
template <class Clf, class DX, class DY>
double classification_accuracy(const Clf& clf, const Eigen::MatrixBase<DX>& x,
                               const Eigen::MatrixBase<DY>& labels, Index batch = 1000) {
  constexpr const char* where = "flowmatch::classification_accuracy";
  detail::require_rows(where, "x", x.rows(), clf.input_dim());
  const Index n = x.cols();
  if (n < 1) detail::throw_invalid(where, "x.cols() (number of samples)", n, "must be at least 1");
  if (batch < 1) detail::throw_invalid(where, "batch", batch, "must be at least 1");
  detail::require_label_vector(where, "labels", labels, n);
  for (Index j = 0; j < n; ++j) detail::class_label(where, "labels", labels, j, clf.num_classes());
  typename Clf::Workspace ws;
  const Index b = std::min(batch, n);
  Matrix<typename Clf::Scalar> logits(clf.num_classes(), b);
  Index correct = 0;
  for (Index j0 = 0; j0 < n; j0 += b) {
    const Index nb = std::min(b, n - j0);
    clf.logits(x.middleCols(j0, nb), logits.leftCols(nb), ws);
    for (Index j = 0; j < nb; ++j) {
      Index best = 0;
      logits.col(j).maxCoeff(&best);
      if (best == detail::class_label(where, "labels", labels, j0 + j, clf.num_classes())) ++correct;
    }
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// Mean and covariance (gaussian_moments) of the classifier's features() of the columns of x,
/// computed `batch` columns at a time: the statistics a Frechet distance compares.
template <class Clf, class DX>
GaussianMoments feature_moments(const Clf& clf, const Eigen::MatrixBase<DX>& x, Index batch = 1000) {
  constexpr const char* where = "flowmatch::feature_moments";
  detail::require_rows(where, "x", x.rows(), clf.input_dim());
  const Index n = x.cols();
  if (n < 2) detail::throw_invalid(where, "x.cols() (number of samples)", n, "a covariance needs at least 2 samples");
  if (batch < 1) detail::throw_invalid(where, "batch", batch, "must be at least 1");
  typename Clf::Workspace ws;
  const Index b = std::min(batch, n);
  Matrix<typename Clf::Scalar> f(clf.feature_dim(), b);
  MomentAccumulator acc(clf.feature_dim());
  for (Index j0 = 0; j0 < n; j0 += b) {
    const Index nb = std::min(b, n - j0);
    clf.features(x.middleCols(j0, nb), f.leftCols(nb), ws);
    acc.add(f.leftCols(nb));
  }
  return acc.moments();
}

}  // namespace flowmatch
