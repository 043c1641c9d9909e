#pragma once
/// \file
/// Softmax cross-entropy: the classification loss, with its gradient with respect to the logits.

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

namespace detail {

/// labels(j) as a class index in [0, num_classes), or InvalidArgument naming `arg`[j] and the
/// value. Integer labels of any type; floating-point labels only when they hold an exact integer.
template <class DY>
Index class_label(const char* where, const char* arg, const Eigen::MatrixBase<DY>& labels, Index j,
                  Index num_classes) {
  using T = typename DY::Scalar;
  static_assert(std::is_arithmetic_v<T>, "flowmatch: class labels must be an Eigen vector of integers.");
  const T value = labels(j);
  long long y;
  if constexpr (std::is_integral_v<T>) {
    y = static_cast<long long>(value);
  } else {
    const double v = static_cast<double>(value);
    if (!(std::isfinite(v) && v == std::floor(v) && std::abs(v) < 9.0e15))
      throw_invalid(where, std::string(arg) + "[" + std::to_string(j) + "]", v, "a class label must be an integer");
    y = static_cast<long long>(v);
  }
  if (y < 0 || y >= static_cast<long long>(num_classes))
    throw_invalid(where, std::string(arg) + "[" + std::to_string(j) + "]", y,
                  "a class label must lie in [0, " + std::to_string(num_classes - 1) + "]");
  return static_cast<Index>(y);
}

/// Checks that `labels` is a vector (one row or one column) of n entries.
template <class DY>
void require_label_vector(const char* where, const char* arg, const Eigen::MatrixBase<DY>& labels, Index n) {
  if (labels.rows() != 1 && labels.cols() != 1 && labels.size() != 0)
    throw_dimension(where, arg, "rows (a label vector has one row or one column)", labels.rows(), 1);
  if (labels.size() != n) throw_dimension(where, arg, "size", labels.size(), n);
}

/// The shared body: mean loss, and the gradient into *grad when Grad.
template <bool Grad, class DL, class DY, class DG>
double softmax_cross_entropy_impl(const char* where, const Eigen::MatrixBase<DL>& logits,
                                  const Eigen::MatrixBase<DY>& labels, DG* grad) {
  const Index C = logits.rows(), n = logits.cols();
  if (C < 1) throw_invalid(where, "logits.rows() (number of classes)", C, "must be at least 1");
  if (n < 1) throw_invalid(where, "logits.cols() (batch size)", n, "must be at least 1");
  require_label_vector(where, "labels", labels, n);
  if constexpr (Grad) {
    require_rows(where, "grad_logits", grad->rows(), C);
    require_cols(where, "grad_logits", grad->cols(), n);
  }
  // Every label is checked before anything is written, so a bad label leaves grad_logits as it was.
  for (Index j = 0; j < n; ++j) class_label(where, "labels", labels, j, C);
  const double inv_n = 1.0 / static_cast<double>(n);
  double sum = 0.0;
  for (Index j = 0; j < n; ++j) {
    const Index y = class_label(where, "labels", labels, j, C);
    // log sum_i exp(z_i) = m + log sum_i exp(z_i - m) with m = max_i z_i: every exponent <= 0.
    double m = static_cast<double>(logits(0, j));
    for (Index i = 1; i < C; ++i) m = std::max(m, static_cast<double>(logits(i, j)));
    double s = 0.0;
    for (Index i = 0; i < C; ++i) s += std::exp(static_cast<double>(logits(i, j)) - m);
    const double log_s = std::log(s);  // in [0, log C]
    // (m - z_y) first: exact for nearby huge logits, where m + log s would round log s away.
    const double loss = (m - static_cast<double>(logits(y, j))) + log_s;
    if (!std::isfinite(loss))
      throw NumericalError(std::string(where) + ": argument 'logits' column " + std::to_string(j) +
                           " holds a NaN or an infinity (loss " + to_string_value(loss) + ")");
    sum += loss;
    if constexpr (Grad) {
      // d loss_j / d z_i = softmax_i - [i == y], divided by n for the mean. Each entry is read
      // before it is written, so grad_logits may be logits itself.
      using G = typename DG::Scalar;
      for (Index i = 0; i < C; ++i) {
        const double p = std::exp((static_cast<double>(logits(i, j)) - m) - log_s);
        (*grad)(i, j) = static_cast<G>(((i == y ? p - 1.0 : p)) * inv_n);
      }
    }
  }
  return sum * inv_n;
}

}  // namespace detail

/// Mean softmax cross-entropy of the C x n `logits` (one sample per column) against `labels`
/// (a vector of n class indices in [0, C), any integer type, or floating point holding integers):
///   loss = (1/n) sum_j [ log sum_i exp(logits(i, j)) - logits(labels(j), j) ],
/// and its gradient (softmax(logits) - onehot(labels)) / n written into `grad_logits` (C x n; it
/// may be `logits` itself). Computed in double, column by column, with the max subtracted before
/// exp (finite for logits of any finite size); allocates nothing. Throws DimensionMismatch for
/// shapes that disagree, InvalidArgument naming the position and value of a bad label (nothing
/// is written then), NumericalError for a column holding a NaN or an infinity.
template <class DL, class DY, class DG>
double softmax_cross_entropy(const Eigen::MatrixBase<DL>& logits, const Eigen::MatrixBase<DY>& labels,
                             const Eigen::MatrixBase<DG>& grad_logits) {
  auto& g = detail::writable(grad_logits);
  return detail::softmax_cross_entropy_impl<true>("flowmatch::softmax_cross_entropy", logits, labels, &g);
}

/// The mean loss alone (see above).
template <class DL, class DY>
double softmax_cross_entropy(const Eigen::MatrixBase<DL>& logits, const Eigen::MatrixBase<DY>& labels) {
  return detail::softmax_cross_entropy_impl<false, DL, DY, Eigen::MatrixBase<DL>>("flowmatch::softmax_cross_entropy",
                                                                                  logits, labels, nullptr);
}

}  // namespace flowmatch
