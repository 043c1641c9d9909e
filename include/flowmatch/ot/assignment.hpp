#pragma once
/// \file
/// Exact linear assignment: the permutation that minimises the total cost of a cost matrix, by
/// shortest augmenting paths with dual potentials (Jonker-Volgenant / the Hungarian method in its
/// O(n^2 m) form). Used by the exact W2 metric and reusable for optimal-transport couplings.

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

namespace detail {
/// out <- cost as a row-major double matrix; InvalidArgument naming the first non-finite entry.
template <class D>
void copy_finite_costs(const char* where, const Eigen::MatrixBase<D>& cost, RowMajorMatrix<double>& out) {
  out.resize(cost.rows(), cost.cols());
  for (Index i = 0; i < cost.rows(); ++i)
    for (Index j = 0; j < cost.cols(); ++j) {
      const double v = static_cast<double>(cost(i, j));
      if (!std::isfinite(v))
        throw_invalid(where, "cost(" + std::to_string(i) + ", " + std::to_string(j) + ")", v, "costs must be finite");
      out(i, j) = v;
    }
}
}  // namespace detail

/// Solves min over injective maps pi: rows -> columns of sum_i cost(i, pi(i)) for an n x m cost
/// matrix with n <= m (square: a permutation). Exact for any finite real costs (negative ones
/// too). Each of the n rows is added by one shortest-augmenting-path search (Dijkstra on reduced
/// costs c(i, j) - u_i - v_j >= 0 with dual potentials u, v, updated once per search: the
/// Jonker-Volgenant scheme as in Crouse, "On implementing 2D rectangular assignment algorithms",
/// 2016), so the work is O(n^2 m) in the worst case and far less on typical inputs.
///
/// The object keeps its buffers: repeated solves at one size allocate nothing (solve() into a
/// caller's vector of the right size). Costs are copied into a row-major double buffer first.
class AssignmentSolver {
 public:
  /// Writes into `assignment` (resized to n) the column of each row; returns the optimal total cost.
  template <class D>
  double solve(const Eigen::MatrixBase<D>& cost, std::vector<Index>& assignment) {
    constexpr const char* where = "flowmatch::solve_assignment";
    const Index n = cost.rows(), m = cost.cols();
    if (n < 1) detail::throw_invalid(where, "cost.rows()", n, "the cost matrix must have at least one row");
    if (m < n)
      detail::throw_invalid(where, "cost.cols()", m,
                            "the cost matrix needs at least as many columns as rows (" + std::to_string(n) + ")");
    detail::copy_finite_costs(where, cost, c_);
    const auto N = static_cast<std::size_t>(n), M = static_cast<std::size_t>(m);
    constexpr double inf = std::numeric_limits<double>::infinity();
    constexpr std::size_t none = static_cast<std::size_t>(-1);
    u_.assign(N, 0.0);
    v_.assign(M, 0.0);
    col4row_.assign(N, none);
    row4col_.assign(M, none);
    path_.assign(M, none);
    dist_.resize(M);
    remaining_.resize(M);
    scanned_rows_.resize(N);
    scanned_cols_.resize(M);
    for (std::size_t cur = 0; cur < N; ++cur) {
      // Dijkstra from row `cur` over reduced costs c(i, j) - u_i - v_j >= 0 until a free column.
      std::fill(dist_.begin(), dist_.end(), inf);
      std::fill(scanned_rows_.begin(), scanned_rows_.end(), char{0});
      std::fill(scanned_cols_.begin(), scanned_cols_.end(), char{0});
      for (std::size_t k = 0; k < M; ++k) remaining_[k] = M - 1 - k;
      std::size_t left = M, i = cur, sink = none;
      double min_val = 0.0;
      while (sink == none) {
        scanned_rows_[i] = 1;
        const double* row = c_.data() + i * M;  // row-major
        const double base = min_val - u_[i];
        std::size_t best = none;
        double lowest = inf;
        for (std::size_t k = 0; k < left; ++k) {
          const std::size_t j = remaining_[k];
          const double r = base + row[j] - v_[j];
          if (r < dist_[j]) {
            path_[j] = i;
            dist_[j] = r;
          }
          // Ties go to a free column: the search ends sooner.
          if (dist_[j] < lowest || (dist_[j] == lowest && row4col_[j] == none)) {
            lowest = dist_[j];
            best = k;
          }
        }
        min_val = lowest;
        const std::size_t j = remaining_[best];
        if (row4col_[j] == none) sink = j;
        else i = row4col_[j];
        scanned_cols_[j] = 1;
        remaining_[best] = remaining_[--left];
      }
      // Potentials: keep reduced costs >= 0 and those on the new matching at 0.
      u_[cur] += min_val;
      for (std::size_t r = 0; r < N; ++r)
        if (scanned_rows_[r] && r != cur) u_[r] += min_val - dist_[col4row_[r]];
      for (std::size_t j = 0; j < M; ++j)
        if (scanned_cols_[j]) v_[j] -= min_val - dist_[j];
      // Augment along the path back to row `cur`.
      std::size_t j = sink;
      for (;;) {
        const std::size_t r = path_[j];
        row4col_[j] = r;
        std::swap(col4row_[r], j);
        if (r == cur) break;
      }
    }
    assignment.resize(N);
    for (std::size_t r = 0; r < N; ++r) assignment[r] = static_cast<Index>(col4row_[r]);
    double total = 0.0;
    for (std::size_t i = 0; i < N; ++i) total += c_(static_cast<Index>(i), assignment[i]);
    return total;
  }

 private:
  RowMajorMatrix<double> c_;
  std::vector<double> u_, v_, dist_;
  std::vector<std::size_t> col4row_, row4col_, path_, remaining_;
  std::vector<char> scanned_rows_, scanned_cols_;
};

/// The optimal assignment of an n x m cost matrix (n <= m): element i is the column given to row i
/// (for a square matrix, a permutation). Throws InvalidArgument for an empty matrix, fewer columns
/// than rows, or a non-finite cost.
template <class D>
std::vector<Index> solve_assignment(const Eigen::MatrixBase<D>& cost) {
  AssignmentSolver solver;
  std::vector<Index> assignment;
  solver.solve(cost, assignment);
  return assignment;
}

/// sum_i cost(i, assignment[i]).
template <class D>
double assignment_cost(const Eigen::MatrixBase<D>& cost, const std::vector<Index>& assignment) {
  detail::require_rows("flowmatch::assignment_cost", "assignment", static_cast<long long>(assignment.size()), cost.rows());
  double total = 0.0;
  for (std::size_t i = 0; i < assignment.size(); ++i) {
    const Index j = assignment[i];
    if (j < 0 || j >= cost.cols())
      detail::throw_invalid("flowmatch::assignment_cost", "assignment[" + std::to_string(i) + "]", j, "not a column of cost");
    total += static_cast<double>(cost(static_cast<Index>(i), j));
  }
  return total;
}

}  // namespace flowmatch
