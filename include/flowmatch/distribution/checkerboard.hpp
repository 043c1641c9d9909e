#pragma once
/// \file
/// The checkerboard density: uniform on the dark squares of a board centred at the origin.

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"

namespace flowmatch {

/// Uniform on the dark squares of a `cells` x `cells` board of squares of side `cell_size`,
/// covering [-h, h]^2 with h = cells * cell_size / 2. Square (i, j) (column i, row j, from the
/// lower left) is dark when i + j is even; there are ceil(cells^2 / 2) of them. The defaults (4
/// cells of side 1) give the 8-square board of FFJORD and torchcfm on [-2, 2]^2.
/// Label (sample_labelled): the index of the dark square, 0 .. num_classes() - 1, row by row.
class Checkerboard : public DistributionBase<Checkerboard> {
 public:
  /// cells >= 1; cell_size finite and > 0. Throws InvalidArgument otherwise.
  explicit Checkerboard(Index cells = 4, double cell_size = 1.0) : cells_(cells), cell_size_(cell_size) {
    constexpr const char* where = "flowmatch::Checkerboard::Checkerboard";
    detail::require_positive_count(where, "cells", cells);
    if (!(cell_size > 0.0 && std::isfinite(cell_size)))
      detail::throw_invalid(where, "cell_size", cell_size, "must be finite and > 0");
    for (Index j = 0; j < cells; ++j)
      for (Index i = 0; i < cells; ++i)
        if ((i + j) % 2 == 0) dark_.emplace_back(i, j);
  }

  Index dim() const { return 2; }
  Index cells() const { return cells_; }
  double cell_size() const { return cell_size_; }
  /// Half the board's side: the board is [-h, h]^2.
  double half_width() const { return 0.5 * static_cast<double>(cells_) * cell_size_; }
  /// The number of dark squares.
  Index num_classes() const { return static_cast<Index>(dark_.size()); }
  /// Whether the point (x, y) lies on a dark square (boundaries count as dark).
  bool is_dark(double x, double y) const {
    const double h = half_width();
    if (!(x >= -h && x <= h && y >= -h && y <= h)) return false;
    const auto clamp = [&](double v) {
      const auto k = static_cast<Index>(std::floor((v + h) / cell_size_));
      return std::min(std::max<Index>(k, 0), cells_ - 1);
    };
    return (clamp(x) + clamp(y)) % 2 == 0;
  }


 private:
  friend DistributionBase<Checkerboard>;
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out_, Index* labels) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::Checkerboard::sample", "out", out.rows(), 2);
    using S = typename Derived::Scalar;
    const double h = half_width();
    for (Index j = 0; j < out.cols(); ++j) {
      const auto k = static_cast<Index>(rng.below(dark_.size()));
      const auto [ci, cj] = dark_[static_cast<std::size_t>(k)];
      const double u = rng.uniform(), v = rng.uniform();
      out(0, j) = static_cast<S>(-h + (static_cast<double>(ci) + u) * cell_size_);
      out(1, j) = static_cast<S>(-h + (static_cast<double>(cj) + v) * cell_size_);
      if (labels) labels[j] = k;
    }
  }

  Index cells_;
  double cell_size_;
  std::vector<std::pair<Index, Index>> dark_;
};

}  // namespace flowmatch
