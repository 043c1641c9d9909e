#pragma once
/// \file
/// An empirical distribution: uniform over a fixed set of points (a data set in a matrix or a CSV
/// file), sampled with replacement.

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"

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

  /// Reads a CSV file with one point per line and one coordinate per comma-separated field. A
  /// first line that is not all numbers is a header and is skipped; blank lines are skipped. If
  /// `expected_dim` > 0, the number of fields must equal it (throws DimensionMismatch naming the
  /// file otherwise); every line must have as many fields as the first (InvalidArgument naming the
  /// line otherwise). Throws Error if the file cannot be read.
  static Empirical from_csv(const std::string& file, Index expected_dim = 0) {
    constexpr const char* where = "flowmatch::Empirical::from_csv";
    std::ifstream is(file);
    if (!is) throw Error(std::string(where) + ": cannot open '" + file + "'");
    std::vector<double> values;
    std::vector<double> row;
    Index dim = 0, count = 0;
    std::string line;
    long long line_no = 0;
    bool first = true;
    while (std::getline(is, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      const bool numeric = parse_row(line, row);
      if (first && !numeric) {  // header
        first = false;
        continue;
      }
      first = false;
      const std::string at = "line " + std::to_string(line_no) + " of '" + file + "'";
      if (!numeric) detail::throw_invalid(where, at, line, "every field must be a finite number");
      if (dim == 0) {
        dim = static_cast<Index>(row.size());
        if (expected_dim > 0 && dim != expected_dim)
          detail::throw_dimension(where, "'" + file + "'", "fields (dimension)", dim, expected_dim);
      } else if (static_cast<Index>(row.size()) != dim) {
        detail::throw_invalid(where, at, line,
                              "has " + std::to_string(row.size()) + " fields, the first data line has " +
                                  std::to_string(dim));
      }
      values.insert(values.end(), row.begin(), row.end());
      ++count;
    }
    if (count == 0) detail::throw_invalid(where, "file", file, "holds no data line");
    return Empirical(Eigen::Map<const Matrix<double>>(values.data(), dim, count));
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
  // Splits a line at commas into finite numbers; false if a field is not one.
  static bool parse_row(const std::string& line, std::vector<double>& row) {
    row.clear();
    std::size_t start = 0;
    for (;;) {
      const std::size_t end = line.find(',', start);
      std::string field = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
      const std::size_t a = field.find_first_not_of(" \t"), b = field.find_last_not_of(" \t");
      if (a == std::string::npos) return false;
      field = field.substr(a, b - a + 1);
      char* stop = nullptr;
      errno = 0;
      const double v = std::strtod(field.c_str(), &stop);
      if (stop != field.c_str() + field.size() || errno == ERANGE || !std::isfinite(v)) return false;
      row.push_back(v);
      if (end == std::string::npos) return true;
      start = end + 1;
    }
  }

  Matrix<double> points_;
};

}  // namespace flowmatch
