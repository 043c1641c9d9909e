#pragma once
/// \file
/// Distances between two point sets (one point per column): MMD with RBF kernels, the energy
/// distance, the sliced Wasserstein distance and the exact W2 distance by optimal assignment.
/// Every function computes in double whatever the inputs' scalar, and refuses point sets of
/// different dimension (DimensionMismatch), empty sets, and (where the metric needs it) sets of
/// different sizes.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/ot/assignment.hpp"

namespace flowmatch {

namespace detail {

template <class DX, class DY>
void require_point_sets(const char* where, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                        bool same_size) {
  if (x.rows() < 1) throw_invalid(where, "x.rows() (dimension)", x.rows(), "must be at least 1");
  if (x.cols() < 1) throw_invalid(where, "x.cols() (number of points)", x.cols(), "must be at least 1");
  require_rows(where, "y", y.rows(), x.rows());
  if (y.cols() < 1) throw_invalid(where, "y.cols() (number of points)", y.cols(), "must be at least 1");
  if (same_size) require_cols(where, "y", y.cols(), x.cols());
}

/// mean over pairs (i, j) of k(|a_i - b_j|^2), in double.
template <class DA, class DB, class K>
double mean_pairwise(const Eigen::MatrixBase<DA>& a_, const Eigen::MatrixBase<DB>& b_, K&& kernel) {
  using M = dependent_t<Matrix<double>, DA>;  // dependent: compiled where called (issue 20)
  const M a = a_.template cast<double>(), b = b_.template cast<double>();
  double sum = 0.0;
  for (Index j = 0; j < b.cols(); ++j) {
    double col = 0.0;
    for (Index i = 0; i < a.cols(); ++i) col += kernel((a.col(i) - b.col(j)).squaredNorm());
    sum += col;
  }
  return sum / (static_cast<double>(a.cols()) * static_cast<double>(b.cols()));
}

}  // namespace detail

/// Squared maximum mean discrepancy with the sum of RBF kernels
///   k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2))  over the bandwidths h,
/// as the biased (V-statistic) estimate MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y),
/// which is >= 0 and exactly 0 for identical sets. Sets may differ in size. O((n + m)^2 d).
template <class DX, class DY>
double mmd_rbf(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, const std::vector<double>& bandwidths) {
  constexpr const char* where = "flowmatch::mmd_rbf";
  detail::require_point_sets(where, x, y, false);
  if (bandwidths.empty()) detail::throw_invalid(where, "bandwidths.size()", 0, "needs at least one bandwidth");
  std::vector<double> inv;  // 1 / (2 h^2)
  for (std::size_t k = 0; k < bandwidths.size(); ++k) {
    const double h = bandwidths[k];
    if (!(h > 0.0 && std::isfinite(h)))
      detail::throw_invalid(where, "bandwidths[" + std::to_string(k) + "]", h, "must be finite and > 0");
    inv.push_back(1.0 / (2.0 * h * h));
  }
  const auto kernel = [&](double d2) {
    double s = 0.0;
    for (double c : inv) s += std::exp(-c * d2);
    return s;
  };
  const double v = detail::mean_pairwise(x, x, kernel) + detail::mean_pairwise(y, y, kernel) -
                   2.0 * detail::mean_pairwise(x, y, kernel);
  return std::max(v, 0.0);  // rounding may leave -1e-17 for identical sets
}

/// Energy distance (Szekely): 2 E|X - Y| - E|X - X'| - E|Y - Y'| over the empirical measures
/// (V-statistic): >= 0, 0 for identical sets, 2 |a - b| for two single points. Sizes may differ.
template <class DX, class DY>
double energy_distance(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y) {
  detail::require_point_sets("flowmatch::energy_distance", x, y, false);
  const auto dist = [](double d2) { return std::sqrt(d2); };
  const double v = 2.0 * detail::mean_pairwise(x, y, dist) - detail::mean_pairwise(x, x, dist) -
                   detail::mean_pairwise(y, y, dist);
  return std::max(v, 0.0);
}

/// Sliced 2-Wasserstein distance between two sets of n points each:
///   SW2 = sqrt( mean over `projections` directions theta of W2^2(theta . x, theta . y) ),
/// with theta uniform on the unit sphere, drawn from `rng`, and each 1-D W2^2 computed exactly by
/// sorting. For y = x + m (a shift) it estimates |m| / sqrt(d).
template <class DX, class DY>
double sliced_wasserstein(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y, Index projections, Rng& rng) {
  constexpr const char* where = "flowmatch::sliced_wasserstein";
  detail::require_point_sets(where, x, y, true);
  if (projections < 1) detail::throw_invalid(where, "projections", projections, "must be at least 1");
  using M = detail::dependent_t<Matrix<double>, DX>;  // dependent: compiled where called (issue 20)
  using V = detail::dependent_t<Vector<double>, DX>;
  const M xd = x.template cast<double>(), yd = y.template cast<double>();
  const Index d = xd.rows(), n = xd.cols();
  V theta(d);
  std::vector<double> px(static_cast<std::size_t>(n)), py(static_cast<std::size_t>(n));
  double total = 0.0;
  for (Index p = 0; p < projections; ++p) {
    double norm = 0.0;
    do {
      rng.fill_normal(theta);
      norm = theta.norm();
    } while (!(norm > 1e-12));
    theta /= norm;
    for (Index j = 0; j < n; ++j) {
      px[static_cast<std::size_t>(j)] = theta.dot(xd.col(j));
      py[static_cast<std::size_t>(j)] = theta.dot(yd.col(j));
    }
    std::sort(px.begin(), px.end());
    std::sort(py.begin(), py.end());
    double s = 0.0;
    for (std::size_t j = 0; j < px.size(); ++j) s += (px[j] - py[j]) * (px[j] - py[j]);
    total += s / static_cast<double>(n);
  }
  return std::sqrt(total / static_cast<double>(projections));
}

/// Exact 2-Wasserstein distance between the empirical measures of two sets of n points each:
///   W2 = sqrt( min over permutations pi of (1/n) sum_i |x_i - y_pi(i)|^2 ),
/// by an exact assignment (solve_assignment): about a second at n = 2000. If `matching` is given
/// it receives pi (the column of y matched to each column of x).
template <class DX, class DY>
double wasserstein2(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& y,
                    std::vector<Index>* matching = nullptr) {
  detail::require_point_sets("flowmatch::wasserstein2", x, y, true);
  using M = detail::dependent_t<Matrix<double>, DX>;  // dependent: compiled where called (issue 20)
  using V = detail::dependent_t<Vector<double>, DX>;
  const M xd = x.template cast<double>(), yd = y.template cast<double>();
  const Index n = xd.cols();
  // |x_i - y_j|^2 = |x_i|^2 + |y_j|^2 - 2 x_i . y_j, clamped at 0 against rounding.
  M cost = -2.0 * (xd.transpose() * yd);
  const V nx = xd.colwise().squaredNorm().transpose(), ny = yd.colwise().squaredNorm().transpose();
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < n; ++i) cost(i, j) = std::max(0.0, cost(i, j) + nx(i) + ny(j));
  std::vector<Index> local;
  std::vector<Index>& pi = matching ? *matching : local;
  AssignmentSolver solver;
  solver.solve(cost, pi);
  double total = 0.0;  // recomputed directly: no cancellation from the expanded form
  for (Index i = 0; i < n; ++i) total += (xd.col(i) - yd.col(pi[static_cast<std::size_t>(i)])).squaredNorm();
  return std::sqrt(total / static_cast<double>(n));
}

}  // namespace flowmatch
