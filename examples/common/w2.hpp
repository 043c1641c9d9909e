#pragma once
// Exact 2-Wasserstein distance between two equal-size point clouds (one point per column), by the
// optimal assignment of flowmatch/metrics/assignment.hpp: W2 = sqrt(min over permutations of the
// mean squared distance). O(n^3): about a tenth of a second at n = 1000.

#include <algorithm>
#include <cmath>
#include <vector>

#include <flowmatch/core/error.hpp>
#include <flowmatch/core/types.hpp>
#include <flowmatch/metrics/assignment.hpp>

namespace flowmatch::examples {

template <class DA, class DB>
double exact_w2(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b) {
  detail::require_rows("flowmatch::examples::exact_w2", "b", b.rows(), a.rows());
  detail::require_cols("flowmatch::examples::exact_w2", "b", b.cols(), a.cols());
  const Index n = a.cols();
  RowMajorMatrix<double> cost(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j)
      cost(i, j) = (a.col(i).template cast<double>() - b.col(j).template cast<double>()).squaredNorm();
  AssignmentSolver solver;
  std::vector<Index> assignment;
  const double total = solver.solve(cost, assignment);
  return std::sqrt(std::max(0.0, total) / static_cast<double>(n));
}

}  // namespace flowmatch::examples
