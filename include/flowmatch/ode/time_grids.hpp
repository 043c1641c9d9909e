#pragma once
/// \file
/// Sampling time grids on [0, 1] (noise at t = 0, data at t = 1): `steps + 1` strictly increasing
/// points, the first exactly 0 and the last exactly 1, for ODESimulator::simulate(x0, ts) and
/// sample_with_log_likelihood(). Uniform; the SD3 shift; Karras et al.'s (EDM) rho spacing. A
/// grid of your own is any strictly increasing vector.
///
/// The SD3 shift in our direction. Stable Diffusion 3 (Esser et al. 2024) shifts a noise level
/// sigma in [0, 1] (sigma = 1: pure noise) by sigma' = s sigma / (1 + (s - 1) sigma). Our time is
/// t = 1 - sigma, so
///   t' = 1 - s (1 - t) / (1 + (s - 1)(1 - t)) = t / (s (1 - t) + t) = t / (s - (s - 1) t).
/// Equivalently the odds (1 - t') / t' = s (1 - t) / t: the shift multiplies the noise-to-signal
/// ratio by s (for the linear path x_t = t x1 + (1 - t) x0 that ratio is the EDM noise level
/// sigma = (1 - t) / t), so shifting by s and then by 1/s gives back the grid. For s > 0 the map
/// is increasing (dt'/dt = s / (s - (s - 1) t)^2 > 0) and fixes 0 and 1; s = 1 is the identity.
/// For s > 1 the denominator exceeds 1 inside (0, 1), so t' < t: the grid bends towards t = 0,
/// spending more (and smaller: dt'/dt = 1/s at t = 0) steps near noise, the high sigma end, and
/// steps s times larger near the data (dt'/dt = s at t = 1), as SD3 does for high resolutions.
/// For s < 1 it bends the other way, towards the data at t = 1.
///
/// The EDM grid in our time. Karras et al. (2022) space noise levels as
///   sigma_i = (sigma_max^(1/rho) + i/(N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
///   i = 0 .. N - 1, then step from sigma_min to sigma_N = 0.
/// For the linear path x_t = t x1 + (1 - t) x0 = t (x1 + sigma x0), sigma = (1 - t) / t, i.e.
/// t = 1 / (1 + sigma). Our flow starts at pure noise, t = 0 (sigma = infinity, not sigma_max) and
/// ends on data, t = 1 (sigma = 0). edm_time_grid(n) therefore takes n + 1 rho-spaced levels from
/// sigma_max (i = 0) to sigma_min (i = n), maps the inner n - 1 to t = 1 / (1 + sigma_i), and puts
/// the end points at exactly 0 and 1: sigma_min and sigma_max shape the spacing, but no step is
/// spent between sigma_min and 0. (Karras's own last step, sigma_min = 0.002 to 0, is in our time
/// a step of 0.002 from t = 0.998 to 1 that moves x by 0.2% of x1 - x0; at 4 NFE it would be a
/// quarter of the budget.) For other schedules (the reference workload's beta_t = sqrt(1 - t)) the
/// map t = 1 / (1 + sigma) is not that schedule's noise level; the grid is then just a spacing.

#include <cmath>
#include <string>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

namespace detail {

inline void require_grid_steps(const char* where, Index steps) {
  if (steps < 1) throw_invalid(where, "steps", steps, "a time grid needs at least 1 step");
}

// The computed grid must be strictly increasing in double; extreme parameters can merge points.
inline void require_distinct_points(const char* where, const char* arg, double value, const Vector<double>& ts) {
  for (Index i = 1; i < ts.size(); ++i)
    if (!(ts(i) > ts(i - 1)))
      throw_invalid(where, arg, value,
                    "the grid's points " + std::to_string(i - 1) + " and " + std::to_string(i) +
                        " coincide in double precision (" + to_string_value(ts(i)) + "): use a milder value or fewer steps");
}

}  // namespace detail

/// `steps + 1` evenly spaced points from 0 to 1: k / steps.
inline Vector<double> uniform_time_grid(Index steps) {
  detail::require_grid_steps("flowmatch::uniform_time_grid", steps);
  return linspace(0.0, 1.0, steps + 1);
}

/// The SD3 shift of one time t in [0, 1] in our direction (t = 0 noise): t / (s (1 - t) + t),
/// for s > 0. s > 1 moves t towards 0 (noise), s < 1 towards 1 (data), s = 1 leaves it.
inline double shift_time(double t, double shift) {
  constexpr const char* where = "flowmatch::shift_time";
  if (!(std::isfinite(shift) && shift > 0.0)) detail::throw_invalid(where, "shift", shift, "must be finite and > 0");
  if (!(t >= 0.0 && t <= 1.0)) detail::throw_invalid(where, "t", t, "time must lie in [0, 1]");
  return t / (shift * (1.0 - t) + t);
}

/// The uniform grid with the SD3 shift s applied to each point: t'_k = shift_time(k / steps, s).
/// s > 1 spends more steps near noise (t = 0), s < 1 near data (t = 1); s = 1 is uniform.
inline Vector<double> shifted_time_grid(Index steps, double shift) {
  constexpr const char* where = "flowmatch::shifted_time_grid";
  detail::require_grid_steps(where, steps);
  if (!(std::isfinite(shift) && shift > 0.0)) detail::throw_invalid(where, "shift", shift, "must be finite and > 0");
  Vector<double> ts = uniform_time_grid(steps);
  for (Index k = 1; k < steps; ++k) ts(k) = shift_time(ts(k), shift);
  detail::require_distinct_points(where, "shift", shift, ts);
  return ts;
}

/// Karras et al.'s rho-spaced noise levels in our time (see the file comment): t_0 = 0, t_steps = 1,
/// and for 0 < i < steps t_i = 1 / (1 + sigma_i) with
///   sigma_i = (sigma_max^(1/rho) + i/steps (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.
/// Larger rho concentrates the steps at low noise (t near 1). Defaults are EDM's.
inline Vector<double> edm_time_grid(Index steps, double rho = 7.0, double sigma_min = 0.002, double sigma_max = 80.0) {
  constexpr const char* where = "flowmatch::edm_time_grid";
  detail::require_grid_steps(where, steps);
  if (!(std::isfinite(rho) && rho > 0.0)) detail::throw_invalid(where, "rho", rho, "must be finite and > 0");
  if (!(std::isfinite(sigma_min) && sigma_min > 0.0))
    detail::throw_invalid(where, "sigma_min", sigma_min, "must be finite and > 0");
  if (!(std::isfinite(sigma_max) && sigma_max > sigma_min))
    detail::throw_invalid(where, "sigma_max", sigma_max, "must be finite and > sigma_min = " + detail::to_string_value(sigma_min));
  const double hi = std::pow(sigma_max, 1.0 / rho), lo = std::pow(sigma_min, 1.0 / rho);
  Vector<double> ts(steps + 1);
  ts(0) = 0.0;
  ts(steps) = 1.0;
  for (Index i = 1; i < steps; ++i) {
    const double sigma = std::pow(hi + static_cast<double>(i) / static_cast<double>(steps) * (lo - hi), rho);
    ts(i) = 1.0 / (1.0 + sigma);
  }
  detail::require_distinct_points(where, "sigma_min", sigma_min, ts);
  return ts;
}

}  // namespace flowmatch
