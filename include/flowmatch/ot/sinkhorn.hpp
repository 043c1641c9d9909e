#pragma once
/// \file
/// Entropic optimal transport between two uniform discrete measures (Sinkhorn-Knopp, Cuturi 2013),
/// and the rounding of a transport plan to a one-to-one pairing (sampling without replacement).

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// What sinkhorn() did.
struct SinkhornResult {
  int iterations = 0;           ///< scaling iterations run
  double marginal_error = 0.0;  ///< max_i |n sum_j P_ij - 1| at the end (columns are exact)
};

/// Buffers of sinkhorn(), sized on the first call for a size n and reused.
struct SinkhornWorkspace {
  Vector<double> u, v, kv, ktu;
};

/// The entropic OT plan between uniform measures on n points: P = argmin <P, C> - reg H(P) over
/// n x n matrices with row and column sums 1 / n, computed as P = diag(u) K diag(v) with
/// K_ij = exp(-(C_ij - min_k C_ik) / reg) (the row shift is absorbed into u, and keeps every row of
/// K non-zero). Iterates until the row sums are within `tol` (relative) or `max_iterations`.
/// Writes P into `plan` (resized to n x n). reg must be finite and > 0; a reg so small that a
/// column of K underflows to 0 throws NumericalError, naming reg.
template <class D>
SinkhornResult sinkhorn(const Eigen::MatrixBase<D>& cost, double reg, Matrix<double>& plan_, SinkhornWorkspace& ws_,
                        int max_iterations = 1000, double tol = 1e-6) {
  constexpr const char* where = "flowmatch::sinkhorn";
  // Of types that depend on D, so that the matrix-vector products below are compiled where
  // sinkhorn is called, not in every file that includes <flowmatch.hpp> (issue 20).
  detail::dependent_t<Matrix<double>, D>& plan = plan_;
  detail::dependent_t<SinkhornWorkspace, D>& ws = ws_;
  const Index n = cost.rows();
  detail::require_positive_count(where, "cost.rows()", n);
  detail::require_cols(where, "cost", cost.cols(), n);
  if (!(reg > 0.0 && std::isfinite(reg))) detail::throw_invalid(where, "reg", reg, "must be finite and > 0");
  if (max_iterations < 1) detail::throw_invalid(where, "max_iterations", max_iterations, "must be at least 1");
  if (plan.rows() != n || plan.cols() != n) plan.resize(n, n);
  for (Index i = 0; i < n; ++i) {
    double lo = std::numeric_limits<double>::infinity();
    for (Index j = 0; j < n; ++j) {
      const double c = static_cast<double>(cost(i, j));
      if (!std::isfinite(c))
        detail::throw_invalid(where, "cost(" + std::to_string(i) + ", " + std::to_string(j) + ")", c,
                              "every cost must be finite");
      lo = std::min(lo, c);
    }
    for (Index j = 0; j < n; ++j) plan(i, j) = std::exp(-(static_cast<double>(cost(i, j)) - lo) / reg);  // K
  }
  const double target = 1.0 / static_cast<double>(n);
  ws.u.setConstant(n, 1.0);
  ws.v.setConstant(n, 1.0);
  ws.kv.resize(n);
  ws.ktu.resize(n);
  SinkhornResult result;
  for (int it = 1; it <= max_iterations; ++it) {
    ws.kv.noalias() = plan * ws.v;
    ws.u = target * ws.kv.cwiseInverse();
    ws.ktu.noalias() = plan.transpose() * ws.u;
    if (!(ws.ktu.minCoeff() > 0.0) || !ws.ktu.allFinite())
      detail::throw_invalid(where, "reg", reg,
                            "too small for these costs: the Gibbs kernel exp(-C / reg) underflows (increase reg)");
    ws.v = target * ws.ktu.cwiseInverse();
    result.iterations = it;
    // Row sums of diag(u) K diag(v): u_i (K v)_i; columns are exact after the v update.
    ws.kv.noalias() = plan * ws.v;
    result.marginal_error = (ws.u.cwiseProduct(ws.kv).array() * static_cast<double>(n) - 1.0).abs().maxCoeff();
    if (result.marginal_error <= tol) break;
  }
  for (Index j = 0; j < n; ++j) plan.col(j) = plan.col(j).cwiseProduct(ws.u) * ws.v(j);
  return result;
}

/// Buffers of pairing_from_plan().
struct PlanPairingWorkspace {
  std::vector<Index> row_order, free_cols;
};

/// A one-to-one pairing drawn from a transport plan without replacement: rows are visited in a
/// random order, and each takes a column among those still free with probability proportional to
/// its plan entries (uniformly if they all vanish). Writes the column of each row into
/// `row_to_col` (a permutation: no column is used twice, unlike sampling pairs from the plan
/// independently, which duplicates some samples and drops others). O(n^2).
template <class D>
void pairing_from_plan(const Eigen::MatrixBase<D>& plan, Rng& rng, std::vector<Index>& row_to_col,
                       PlanPairingWorkspace& ws) {
  constexpr const char* where = "flowmatch::pairing_from_plan";
  const Index n = plan.rows();
  detail::require_positive_count(where, "plan.rows()", n);
  detail::require_cols(where, "plan", plan.cols(), n);
  const auto m = static_cast<std::size_t>(n);
  row_to_col.resize(m);
  ws.row_order.resize(m);
  ws.free_cols.resize(m);
  for (Index k = 0; k < n; ++k) ws.row_order[static_cast<std::size_t>(k)] = ws.free_cols[static_cast<std::size_t>(k)] = k;
  for (std::size_t k = m; k > 1; --k) std::swap(ws.row_order[k - 1], ws.row_order[static_cast<std::size_t>(rng.below(k))]);
  std::size_t num_free = m;
  for (std::size_t k = 0; k < m; ++k) {
    const Index i = ws.row_order[k];
    double total = 0.0;
    std::size_t pick = num_free - 1;  // the last column with positive weight, should rounding leave the loop below
    for (std::size_t f = 0; f < num_free; ++f) {
      const double w = static_cast<double>(plan(i, ws.free_cols[f]));
      if (w > 0.0) total += w, pick = f;
    }
    if (total > 0.0 && std::isfinite(total)) {
      const double target = rng.uniform() * total;
      double c = 0.0;
      for (std::size_t f = 0; f < num_free; ++f) {
        c += std::max(0.0, static_cast<double>(plan(i, ws.free_cols[f])));
        if (target < c) {
          pick = f;
          break;
        }
      }
    } else {
      pick = static_cast<std::size_t>(rng.below(num_free));
    }
    row_to_col[static_cast<std::size_t>(i)] = ws.free_cols[pick];
    ws.free_cols[pick] = ws.free_cols[--num_free];
  }
}

}  // namespace flowmatch
