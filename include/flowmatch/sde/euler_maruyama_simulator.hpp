#pragma once
/// \file
/// Euler-Maruyama simulation of an SDE over a time grid or a number of uniform steps.

#include <cmath>
#include <string>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/sde/concepts.hpp"

namespace flowmatch {

/// X_{k+1} = X_k + h f(X_k, t_k) + sqrt(h) g(X_k, t_k) * Z_k, Z_k ~ N(0, I) drawn ONCE per step
/// and per entry from the caller's Rng (the reference implementation and the MIT lab draw `randn` twice, so the noise
/// they add is not the one they think). Strong order 1/2, weak order 1. Holds a reference to the
/// SDE, which must outlive it. After the first step at a batch shape, steps allocate nothing.
template <SDE E>
class EulerMaruyamaSimulator {
 public:
  using Scalar = typename E::Scalar;

  explicit EulerMaruyamaSimulator(E& sde) : sde_(sde) {}

  /// One step of size h > 0 from t, in place.
  template <class DX>
  void step(const Eigen::MatrixBase<DX>& x_, double t, double h, Rng& rng) {
    auto& x = detail::writable(x_);
    if (drift_.rows() != x.rows() || drift_.cols() != x.cols()) {
      drift_.resize(x.rows(), x.cols());
      diffusion_.resize(x.rows(), x.cols());
      noise_.resize(x.rows(), x.cols());
    }
    sde_.drift(x, t, drift_);
    sde_.diffusion(x, t, diffusion_);
    rng.fill_normal(noise_);
    x.noalias() += static_cast<Scalar>(h) * drift_ + static_cast<Scalar>(std::sqrt(h)) * diffusion_.cwiseProduct(noise_);
  }

  /// Integrates x (d x n) in place over the grid ts (strictly increasing).
  template <class DX, class DT>
  void simulate_inplace(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DT>& ts, Rng& rng) {
    check(x, "simulate_inplace", "x");
    detail::require_time_grid("flowmatch::EulerMaruyamaSimulator::simulate_inplace", "ts", ts);
    for (Index k = 0; k + 1 < ts.size(); ++k) {
      const double t0 = static_cast<double>(ts(k));
      step(x, t0, static_cast<double>(ts(k + 1)) - t0, rng);
    }
  }

  /// `steps` uniform steps from t0 to t1 (> t0), in place.
  template <class DX>
  void simulate_inplace(const Eigen::MatrixBase<DX>& x, double t0, double t1, Index steps, Rng& rng) {
    check(x, "simulate_inplace", "x");
    check_steps(t0, t1, steps);
    for (Index k = 0; k < steps; ++k) {
      const double a = t0 + (t1 - t0) * static_cast<double>(k) / static_cast<double>(steps);
      const double b = k + 1 == steps ? t1 : t0 + (t1 - t0) * static_cast<double>(k + 1) / static_cast<double>(steps);
      step(x, a, b - a, rng);
    }
  }

  /// The state at ts[last] of the process started from x0 at ts[0].
  template <class DX, class DT>
  Matrix<Scalar> simulate(const Eigen::MatrixBase<DX>& x0, const Eigen::MatrixBase<DT>& ts, Rng& rng) {
    check(x0, "simulate", "x0");
    Matrix<Scalar> x = x0.template cast<Scalar>();
    simulate_inplace(x, ts, rng);
    return x;
  }

  template <class DX>
  Matrix<Scalar> simulate(const Eigen::MatrixBase<DX>& x0, double t0, double t1, Index steps, Rng& rng) {
    check(x0, "simulate", "x0");
    Matrix<Scalar> x = x0.template cast<Scalar>();
    simulate_inplace(x, t0, t1, steps, rng);
    return x;
  }

  /// The state at every point of ts (element 0 is x0).
  template <class DX, class DT>
  std::vector<Matrix<Scalar>> simulate_with_trajectory(const Eigen::MatrixBase<DX>& x0, const Eigen::MatrixBase<DT>& ts,
                                                       Rng& rng) {
    check(x0, "simulate_with_trajectory", "x0");
    detail::require_time_grid("flowmatch::EulerMaruyamaSimulator::simulate_with_trajectory", "ts", ts);
    std::vector<Matrix<Scalar>> traj;
    traj.reserve(static_cast<std::size_t>(ts.size()));
    traj.push_back(x0.template cast<Scalar>());
    for (Index k = 0; k + 1 < ts.size(); ++k) {
      traj.push_back(traj.back());
      const double t0 = static_cast<double>(ts(k));
      step(traj.back(), t0, static_cast<double>(ts(k + 1)) - t0, rng);
    }
    return traj;
  }

  E& sde() { return sde_; }

 private:
  template <class DX>
  void check(const Eigen::MatrixBase<DX>& x, const char* fn, const char* arg) const {
    if (x.rows() == sde_.dim() && x.cols() > 0) return;
    const std::string where = std::string("flowmatch::EulerMaruyamaSimulator::") + fn;
    detail::require_rows(where, arg, x.rows(), static_cast<long long>(sde_.dim()));
    detail::throw_invalid(where, std::string(arg) + ".cols() (batch size)", x.cols(), "must be at least 1");
  }
  static void check_steps(double t0, double t1, Index steps) {
    constexpr const char* where = "flowmatch::EulerMaruyamaSimulator::simulate_inplace";
    if (!std::isfinite(t0)) detail::throw_invalid(where, "t0", t0, "must be finite");
    if (!(std::isfinite(t1) && t1 > t0)) detail::throw_invalid(where, "t1", t1, "must be finite and > t0");
    if (steps < 1) detail::throw_invalid(where, "steps", steps, "must be at least 1");
  }

  E& sde_;
  Matrix<Scalar> drift_, diffusion_, noise_;
};

}  // namespace flowmatch
