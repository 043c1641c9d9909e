#pragma once
/// \file
/// Sampling and likelihoods spread over MPI ranks: the columns (points) are split into contiguous
/// runs, one per rank, computed there, and gathered on rank 0 in their original order.

#include <utility>

#include "flowmatch/core/types.hpp"
#include "flowmatch/distributed/communicator.hpp"
#include "flowmatch/ode/log_likelihood.hpp"

namespace flowmatch::distributed {

/// Applies `fn` to the columns of `x` spread over the ranks and gathers the results on rank 0:
/// rank r gets the columns shard_range(x.cols(), r, size) of rank 0's `x` (scattered from rank 0:
/// on the other ranks `x` is ignored and may be empty) and computes `fn(columns)`, a matrix with
/// `out_rows` rows (out_rows < 0: as many as x has) and as many columns (any scalar type Out);
/// rank 0 returns the out_rows x x.cols()
/// matrix of all results in column order, the other ranks an empty one. Each column's result is
/// what a single process computes for it when fn treats columns independently (as every flowmatch
/// simulator and likelihood does). Collective.
template <class Out, class In, class F>
Matrix<Out> map_columns(const Communicator& comm, const Matrix<In>& x, Index out_rows, F&& fn) {
  long long shape[2] = {static_cast<long long>(x.rows()), static_cast<long long>(x.cols())};
  comm.broadcast(shape, 2);
  const Index rows = shape[0], cols = shape[1];
  if (out_rows < 0) out_rows = rows;
  std::vector<long long> in_counts(static_cast<std::size_t>(comm.size())), out_counts(in_counts.size());
  for (int r = 0; r < comm.size(); ++r) {
    const auto [a, b] = shard_range(cols, r, comm.size());
    in_counts[static_cast<std::size_t>(r)] = static_cast<long long>((b - a) * rows);
    out_counts[static_cast<std::size_t>(r)] = static_cast<long long>((b - a) * out_rows);
  }
  const auto [begin, end] = shard_range(cols, comm.rank(), comm.size());
  Matrix<In> mine(rows, end - begin);
  // Scatter: rank 0 sends each rank its columns (contiguous in column-major storage).
  if (comm.is_root()) {
    mine = x.middleCols(begin, end - begin);
    for (int r = 1; r < comm.size(); ++r) {
      const auto [a, b] = shard_range(cols, r, comm.size());
      for (long long done = 0; done < (b - a) * rows; done += detail::kMaxCount)
        detail::check_mpi(MPI_Send(x.data() + a * rows + done, static_cast<int>(std::min(detail::kMaxCount, (b - a) * rows - done)),
                                   detail::mpi_type<In>(), r, 0, comm.native()),
                          "MPI_Send");
    }
  } else {
    for (long long done = 0; done < mine.size(); done += detail::kMaxCount)
      detail::check_mpi(MPI_Recv(mine.data() + done, static_cast<int>(std::min<long long>(detail::kMaxCount, mine.size() - done)),
                                 detail::mpi_type<In>(), 0, 0, comm.native(), MPI_STATUS_IGNORE),
                        "MPI_Recv");
  }
  Matrix<Out> result;
  collectively(comm, "computing the sharded columns", [&] {
    result = fn(std::as_const(mine));
    if (result.rows() != out_rows || result.cols() != mine.cols())
      throw DimensionMismatch("flowmatch::distributed::map_columns: fn returned a " + std::to_string(result.rows()) + " x " +
                              std::to_string(result.cols()) + " matrix for " + std::to_string(mine.cols()) +
                              " columns (expected " + std::to_string(out_rows) + " rows)");
  });
  Matrix<Out> all(comm.is_root() ? out_rows : 0, comm.is_root() ? cols : 0);
  comm.gatherv(result.data(), out_counts, all.data());
  return all;
}

/// The end points of the flow from rank 0's start points `x0` (one per column) over the time grid
/// `ts`, integrated by `simulator` (any flowmatch ODE or SDE simulator, identical on every rank)
/// with the columns spread over the ranks; rank 0 gets all of them, in order (the other ranks an
/// empty matrix). Collective.
template <class Sim, class S, class DT>
Matrix<S> simulate_sharded(const Communicator& comm, Sim& simulator, const Matrix<S>& x0, const Eigen::MatrixBase<DT>& ts) {
  return map_columns<S>(comm, x0, -1, [&](const Matrix<S>& mine) {
    Matrix<S> x = mine;
    if (x.cols() > 0) simulator.simulate_inplace(x, ts);
    return x;
  });
}

/// log p_1(x_1) of rank 0's points `x1` under the flow behind `div` (log_likelihood() of
/// ode/log_likelihood.hpp with the same arguments), the points spread over the ranks; rank 0 gets
/// every point's log-density in order, the other ranks an empty vector. With the exact divergence
/// each value is what one process computes; a Hutchinson estimator draws each rank's probes from
/// that rank's `rng` (seed it per rank). Collective.
template <class Div, DensityDistribution Base, class S, class St = RK4Stepper<typename Div::Scalar>>
Vector<double> log_likelihood_sharded(const Communicator& comm, Div& div, const Base& p0, const Matrix<S>& x1, Index steps,
                                      Rng* rng = nullptr, St stepper = St{}) {
  const Matrix<double> all = map_columns<double>(comm, x1, 1, [&](const Matrix<S>& mine) {
    Matrix<double> out(1, mine.cols());
    if (mine.cols() > 0) out.row(0) = log_likelihood(div, p0, mine, steps, rng, stepper).log_density.transpose();
    return out;
  });
  return comm.is_root() ? Vector<double>(all.row(0).transpose()) : Vector<double>();
}

}  // namespace flowmatch::distributed
