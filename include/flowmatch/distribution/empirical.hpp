#pragma once
/// \file
/// An empirical distribution: uniform over a fixed set of points (a data set in a matrix or a CSV
/// file), sampled with replacement.

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/io/csv.hpp"

namespace flowmatch {

/// The uniform distribution over the n columns of a d x n matrix: each draw is column
/// rng.below(n), independently (with replacement).
class Empirical {
 public:
  /// points: d x n, one point per column, d >= 1, n >= 1, every entry finite. Throws
  /// InvalidArgument otherwise.
  explicit Empirical(Matrix<double> points) : points_(std::move(points)) {
    constexpr const char* where = "flowmatch::Empirical::Empirical";
    detail::require_positive_count(where, "points.rows() (dimension)", points_.rows());
    detail::require_positive_count(where, "points.cols() (number of points)", points_.cols());
    for (Index j = 0; j < points_.cols(); ++j)
      for (Index i = 0; i < points_.rows(); ++i)
        if (!std::isfinite(points_(i, j)))
          detail::throw_invalid(where, "points(" + std::to_string(i) + ", " + std::to_string(j) + ")", points_(i, j),
                                "every entry must be finite");
  }

  /// Reads a CSV file with one point per line and one coordinate per field, with io/csv.hpp's
  /// read_csv (a first line of names is a header; blank and '#' lines are skipped; a ragged,
  /// empty or non-numeric file throws CsvError naming file:line:column). If `expected_dim` > 0,
  /// the number of fields must equal it: throws DimensionMismatch naming the file otherwise.
  static Empirical from_csv(const std::string& file, Index expected_dim = 0) {
    Matrix<double> data = read_csv<double>(file);
    if (expected_dim > 0 && data.rows() != expected_dim)
      detail::throw_dimension("flowmatch::Empirical::from_csv", "'" + file + "'", "fields (dimension)", data.rows(),
                              expected_dim);
    return Empirical(std::move(data));
  }

  Index dim() const { return points_.rows(); }
  Index size() const { return points_.cols(); }
  const Matrix<double>& points() const { return points_; }

  /// Fills the d x n matrix `out` with n independent draws (columns of points(), with replacement).
  template <class Derived>
  void sample(Rng& rng, const Eigen::MatrixBase<Derived>& out_) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::Empirical::sample", "out", out.rows(), dim());
    using S = typename Derived::Scalar;
    const auto n = static_cast<std::uint64_t>(size());
    for (Index j = 0; j < out.cols(); ++j) {
      const auto k = static_cast<Index>(rng.below(n));
      for (Index i = 0; i < dim(); ++i) out(i, j) = static_cast<S>(points_(i, k));
    }
  }

 private:
  Matrix<double> points_;
};

}  // namespace flowmatch
