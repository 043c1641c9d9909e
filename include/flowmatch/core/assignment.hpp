#pragma once
/// \file
/// Exact linear assignment: the minimum-cost perfect matching of an n x n cost matrix, by the
/// shortest augmenting path method of Jonker and Volgenant (1987) as Crouse (2016) writes it (the
/// algorithm behind scipy.optimize.linear_sum_assignment). O(n^3) in the worst case; a few
/// milliseconds at n = 256 for squared distances between point clouds.

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Buffers of solve_assignment, sized on the first call for a size n and reused.
struct AssignmentWorkspace {
  std::vector<double> u, v, shortest;
  std::vector<Index> path, col_for_row, row_for_col, remaining;
  std::vector<char> scanned_rows, scanned_cols;

  void resize(Index n) {
    const auto m = static_cast<std::size_t>(n);
    u.assign(m, 0.0);
    v.assign(m, 0.0);
    shortest.assign(m, 0.0);
    path.assign(m, -1);
    col_for_row.assign(m, -1);
    row_for_col.assign(m, -1);
    remaining.assign(m, 0);
    scanned_rows.assign(m, 0);
    scanned_cols.assign(m, 0);
  }
};

namespace detail {

// One shortest augmenting path from the free row `row` (Dijkstra on reduced costs). Returns the
// free column where it ends, or -1 if none is reachable (only with infinite costs).
template <class D>
Index augmenting_path(const Eigen::MatrixBase<D>& cost, AssignmentWorkspace& ws, Index row, double& min_value) {
  const Index n = cost.rows();
  constexpr double inf = std::numeric_limits<double>::infinity();
  Index num_remaining = n;
  for (Index k = 0; k < n; ++k) {
    const auto ku = static_cast<std::size_t>(k);
    ws.remaining[ku] = n - k - 1;
    ws.scanned_rows[ku] = 0;
    ws.scanned_cols[ku] = 0;
    ws.shortest[ku] = inf;
  }
  double min_val = 0.0;
  Index sink = -1;
  Index i = row;
  while (sink == -1) {
    Index index = -1;
    double lowest = inf;
    ws.scanned_rows[static_cast<std::size_t>(i)] = 1;
    const double ui = ws.u[static_cast<std::size_t>(i)];
    for (Index k = 0; k < num_remaining; ++k) {
      const Index j = ws.remaining[static_cast<std::size_t>(k)];
      const auto ju = static_cast<std::size_t>(j);
      const double r = min_val + static_cast<double>(cost(i, j)) - ui - ws.v[ju];
      if (r < ws.shortest[ju]) {
        ws.path[ju] = i;
        ws.shortest[ju] = r;
      }
      // Prefer a free column among equals: the path ends sooner.
      if (ws.shortest[ju] < lowest || (ws.shortest[ju] == lowest && ws.row_for_col[ju] == -1)) {
        lowest = ws.shortest[ju];
        index = k;
      }
    }
    min_val = lowest;
    if (index < 0 || !(min_val < inf)) return -1;
    const Index j = ws.remaining[static_cast<std::size_t>(index)];
    if (ws.row_for_col[static_cast<std::size_t>(j)] == -1)
      sink = j;
    else
      i = ws.row_for_col[static_cast<std::size_t>(j)];
    ws.scanned_cols[static_cast<std::size_t>(j)] = 1;
    ws.remaining[static_cast<std::size_t>(index)] = ws.remaining[static_cast<std::size_t>(--num_remaining)];
  }
  min_value = min_val;
  return sink;
}

}  // namespace detail

/// Minimum-cost perfect matching of the square matrix `cost` (float or double, finite): writes into
/// `row_to_col` (resized to n) the column assigned to each row, a permutation, and returns the
/// total cost sum_i cost(i, row_to_col[i]). Allocates nothing once `ws` and `row_to_col` have held
/// a problem of this size. Throws InvalidArgument for a non-square, empty or non-finite matrix.
/// Row access is the inner loop: a row-major matrix is the fastest input.
template <class D>
double solve_assignment(const Eigen::MatrixBase<D>& cost, std::vector<Index>& row_to_col, AssignmentWorkspace& ws) {
  constexpr const char* where = "flowmatch::solve_assignment";
  const Index n = cost.rows();
  detail::require_positive_count(where, "cost.rows()", n);
  detail::require_cols(where, "cost", cost.cols(), n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < n; ++i)
      if (!std::isfinite(static_cast<double>(cost(i, j))))
        detail::throw_invalid(where, "cost(" + std::to_string(i) + ", " + std::to_string(j) + ")",
                              static_cast<double>(cost(i, j)), "every cost must be finite");
  ws.resize(n);
  for (Index row = 0; row < n; ++row) {
    double min_val = 0.0;
    const Index sink = detail::augmenting_path(cost, ws, row, min_val);
    if (sink < 0) throw NumericalError(std::string(where) + ": no augmenting path (non-finite reduced costs)");
    // Update the dual variables.
    ws.u[static_cast<std::size_t>(row)] += min_val;
    for (Index i = 0; i < n; ++i) {
      const auto iu = static_cast<std::size_t>(i);
      if (ws.scanned_rows[iu] && i != row)
        ws.u[iu] += min_val - ws.shortest[static_cast<std::size_t>(ws.col_for_row[iu])];
    }
    for (Index j = 0; j < n; ++j) {
      const auto ju = static_cast<std::size_t>(j);
      if (ws.scanned_cols[ju]) ws.v[ju] -= min_val - ws.shortest[ju];
    }
    // Augment along the path.
    Index j = sink;
    for (;;) {
      const Index i = ws.path[static_cast<std::size_t>(j)];
      ws.row_for_col[static_cast<std::size_t>(j)] = i;
      std::swap(ws.col_for_row[static_cast<std::size_t>(i)], j);
      if (i == row) break;
    }
  }
  row_to_col.resize(static_cast<std::size_t>(n));
  double total = 0.0;
  for (Index i = 0; i < n; ++i) {
    const Index j = ws.col_for_row[static_cast<std::size_t>(i)];
    row_to_col[static_cast<std::size_t>(i)] = j;
    total += static_cast<double>(cost(i, j));
  }
  return total;
}

/// The same, allocating its own workspace: returns the column of each row.
template <class D>
std::vector<Index> solve_assignment(const Eigen::MatrixBase<D>& cost) {
  std::vector<Index> row_to_col;
  AssignmentWorkspace ws;
  solve_assignment(cost, row_to_col, ws);
  return row_to_col;
}

}  // namespace flowmatch
