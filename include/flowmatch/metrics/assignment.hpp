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

/// Solves min over injective maps pi: rows -> columns of sum_i cost(i, pi(i)) for an n x m cost
/// matrix with n <= m (square: a permutation). Exact for any finite real costs (negative ones
/// too). Each of the n rows is added by one shortest-augmenting-path search (Dijkstra on reduced
/// costs with potentials u, v), so the work is O(n^2 m) in the worst case and far less on typical
/// inputs: n = 2000 random Euclidean costs take about a second.
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
    c_.resize(n, m);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < m; ++j) {
        const double v = static_cast<double>(cost(i, j));
        if (!std::isfinite(v))
          detail::throw_invalid(where, "cost(" + std::to_string(i) + ", " + std::to_string(j) + ")", v,
                                "costs must be finite");
        c_(i, j) = v;
      }
    const auto N = static_cast<std::size_t>(n), M = static_cast<std::size_t>(m);
    // 1-based arrays; column 0 is a virtual column holding the row being inserted.
    u_.assign(N + 1, 0.0);
    v_.assign(M + 1, 0.0);
    p_.assign(M + 1, 0);    // p_[j]: row matched to column j (0: none)
    way_.assign(M + 1, 0);  // predecessor column on the shortest path
    minv_.resize(M + 1);
    used_.resize(M + 1);
    constexpr double inf = std::numeric_limits<double>::infinity();
    for (std::size_t i = 1; i <= N; ++i) {
      p_[0] = i;
      std::size_t j0 = 0;
      std::fill(minv_.begin(), minv_.end(), inf);
      std::fill(used_.begin(), used_.end(), char{0});
      do {
        used_[j0] = 1;
        const std::size_t i0 = p_[j0];
        const double* row = c_.data() + (i0 - 1) * M;  // row-major
        const double ui0 = u_[i0];
        double delta = inf;
        std::size_t j1 = 0;
        for (std::size_t j = 1; j <= M; ++j) {
          if (used_[j]) continue;
          const double cur = row[j - 1] - ui0 - v_[j];
          if (cur < minv_[j]) {
            minv_[j] = cur;
            way_[j] = j0;
          }
          if (minv_[j] < delta) {
            delta = minv_[j];
            j1 = j;
          }
        }
        for (std::size_t j = 0; j <= M; ++j) {
          if (used_[j]) {
            u_[p_[j]] += delta;
            v_[j] -= delta;
          } else {
            minv_[j] -= delta;
          }
        }
        j0 = j1;
      } while (p_[j0] != 0);
      do {  // augment along the path
        const std::size_t j1 = way_[j0];
        p_[j0] = p_[j1];
        j0 = j1;
      } while (j0 != 0);
    }
    assignment.resize(N);
    for (std::size_t j = 1; j <= M; ++j)
      if (p_[j] != 0) assignment[p_[j] - 1] = static_cast<Index>(j - 1);
    double total = 0.0;
    for (std::size_t i = 0; i < N; ++i) total += c_(static_cast<Index>(i), assignment[i]);
    return total;
  }

 private:
  RowMajorMatrix<double> c_;
  std::vector<double> u_, v_, minv_;
  std::vector<std::size_t> p_, way_;
  std::vector<char> used_;
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
