#pragma once
/// \file
/// How straight a learned flow is: its path energy, straightness and the normalised path energy
/// of Tong et al. (2023, "Improving and generalizing flow-based generative models with minibatch
/// optimal transport", the NPE of their 2-D tables), measured along Euler trajectories.

#include <cmath>
#include <string>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/concepts.hpp"

namespace flowmatch {

/// What path_statistics() measured over n trajectories of `steps` Euler steps on [0, 1].
struct PathStatistics {
  /// Path energy PE = mean_j sum_k dt |v(x_k, t_k)|^2, the left Riemann sum of int_0^1 |v|^2 dt
  /// along each trajectory (torchcfm's estimate, on the same Euler grid).
  double path_energy = 0.0;
  /// Mean squared displacement mean_j |x_1 - x_0|^2: the path energy of straight lines between
  /// the same endpoints (the least energy any path between them has).
  double displacement_energy = 0.0;
  /// Straightness S = mean_j sum_k dt |(x_1 - x_0) - v(x_k, t_k)|^2 (Liu et al. 2023): 0 for
  /// straight trajectories at constant speed. On the Euler grid sum_k dt v_k = x_1 - x_0, so
  /// S = PE - displacement_energy >= 0.
  double straightness = 0.0;
  Index nfe = 0;
  Matrix<double> x1;  ///< the endpoints (d x n), for W2 against a target sample
};

/// Integrates the field from x0 (d x n) with `steps` Euler steps from t = 0 to 1 and measures
/// the trajectories (see PathStatistics). Throws InvalidArgument for steps < 1 or an empty batch,
/// NumericalError if the field produces a non-finite value.
template <VectorField V, class DX>
PathStatistics path_statistics(const V& field, const Eigen::MatrixBase<DX>& x0, Index steps) {
  constexpr const char* where = "flowmatch::path_statistics";
  using S = typename V::Scalar;
  if (steps < 1) detail::throw_invalid(where, "steps", steps, "must be at least 1");
  detail::require_rows(where, "x0", x0.rows(), static_cast<Index>(field.dim()));
  if (x0.cols() < 1) detail::throw_invalid(where, "x0.cols()", x0.cols(), "must be at least 1");
  const Index n = x0.cols();
  Matrix<S> x = x0.template cast<S>(), v(x.rows(), n);
  typename V::Workspace ws;
  const double dt = 1.0 / static_cast<double>(steps);
  double pe = 0.0;
  for (Index k = 0; k < steps; ++k) {
    field.forward(x, static_cast<double>(k) * dt, v, ws);
    const double e = v.template cast<double>().squaredNorm();
    if (!std::isfinite(e))
      throw NumericalError(std::string(where) + ": the field is not finite at step " + std::to_string(k) +
                           " (t = " + detail::to_string_value(static_cast<double>(k) * dt) + ")");
    pe += dt * e;
    x.noalias() += static_cast<S>(dt) * v;
  }
  PathStatistics out;
  out.x1 = x.template cast<double>();
  out.path_energy = pe / static_cast<double>(n);
  out.displacement_energy = (out.x1 - x0.template cast<double>()).squaredNorm() / static_cast<double>(n);
  out.straightness = out.path_energy - out.displacement_energy;
  out.nfe = steps;
  return out;
}

/// Tong et al.'s normalised path energy NPE = |PE - W2^2| / W2^2, with W2 the Wasserstein-2
/// distance between the source and the target (the least path energy of any transport).
inline double normalized_path_energy(double path_energy, double w2) {
  if (!(w2 > 0.0 && std::isfinite(w2)))
    detail::throw_invalid("flowmatch::normalized_path_energy", "w2", w2, "must be finite and > 0");
  return std::abs(path_energy - w2 * w2) / (w2 * w2);
}

}  // namespace flowmatch
