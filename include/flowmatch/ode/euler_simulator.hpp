#pragma once
/// \file
/// Explicit Euler simulation of an ODE over a user-given time grid.

#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/ode/concepts.hpp"

namespace flowmatch {

/// x_{k+1} = x_k + (t_{k+1} - t_k) u(x_k, t_k): first order, one drift evaluation per step.
///
/// The grid `ts` (any Eigen vector, strictly increasing, finite) is shared by every sample of the
/// batch; the loop runs over its points (the seed's `simulate` loops over the batch axis by
/// mistake). Holds a reference to the ODE, which must outlive it. After the first step at a batch
/// size, steps allocate nothing.
template <ODE O>
class EulerSimulator {
 public:
  using Scalar = typename O::Scalar;
  static constexpr int order = 1;

  explicit EulerSimulator(O& ode) : ode_(ode) {}

  /// One step in place: x <- x + h u(x, t).
  template <class DX>
  void step(const Eigen::MatrixBase<DX>& x_, double t, double h) {
    auto& x = detail::writable(x_);
    if (drift_.rows() != x.rows() || drift_.cols() != x.cols()) drift_.resize(x.rows(), x.cols());
    ode_.drift(x, t, drift_);
    x.noalias() += static_cast<Scalar>(h) * drift_;
  }

  /// Integrates the batch x (d x n) in place from ts[0] to ts[last].
  template <class DX, class DT>
  void simulate_inplace(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DT>& ts) {
    check(x, ts, "flowmatch::EulerSimulator::simulate_inplace");
    for (Index k = 0; k + 1 < ts.size(); ++k) {
      const double t0 = static_cast<double>(ts(k));
      step(x, t0, static_cast<double>(ts(k + 1)) - t0);
    }
  }

  /// The state at ts[last] of the flow started from x0 (d x n) at ts[0].
  template <class DX, class DT>
  Matrix<Scalar> simulate(const Eigen::MatrixBase<DX>& x0, const Eigen::MatrixBase<DT>& ts) {
    Matrix<Scalar> x = x0.template cast<Scalar>();
    simulate_inplace(x, ts);
    return x;
  }

  /// The state at every point of ts: element k is the d x n batch at ts[k] (element 0 is x0).
  template <class DX, class DT>
  std::vector<Matrix<Scalar>> simulate_with_trajectory(const Eigen::MatrixBase<DX>& x0,
                                                       const Eigen::MatrixBase<DT>& ts) {
    check(x0, ts, "flowmatch::EulerSimulator::simulate_with_trajectory");
    std::vector<Matrix<Scalar>> traj;
    traj.reserve(static_cast<std::size_t>(ts.size()));
    traj.push_back(x0.template cast<Scalar>());
    for (Index k = 0; k + 1 < ts.size(); ++k) {
      traj.push_back(traj.back());
      const double t0 = static_cast<double>(ts(k));
      step(traj.back(), t0, static_cast<double>(ts(k + 1)) - t0);
    }
    return traj;
  }

  O& ode() { return ode_; }

 private:
  template <class DX, class DT>
  void check(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DT>& ts, const char* where) const {
    detail::require_rows(where, "x0", x.rows(), static_cast<long long>(ode_.dim()));
    if (x.cols() <= 0) detail::throw_invalid(where, "x0.cols() (batch size)", x.cols(), "must be at least 1");
    detail::require_time_grid(where, "ts", ts);
  }

  O& ode_;
  Matrix<Scalar> drift_;
};

}  // namespace flowmatch
