#pragma once
/// \file
/// Concepts for the two schedules of a Gaussian conditional path x_t = alpha_t z + beta_t eps.
///
/// A schedule is a small policy type with `value(t)` and its time derivative `derivative(t)`, both
/// in double for t in [0, 1]. An alpha schedule goes from alpha_0 = 0 to alpha_1 = 1 (noise to
/// data); a beta schedule from beta_0 = 1 to beta_1 = 0. The endpoints cannot be checked at
/// compile time; GaussianConditionalPath checks them when it is built and refuses a schedule that
/// misses them. `linear_alpha.hpp` is the template to copy for a schedule of your own.
///
/// A schedule that misses an endpoint by design (the VP diffusion never reaches pure noise; the
/// Lipman OT path ends at width sigma_min) says by how much with an optional member
/// `s.endpoint_tolerance()` -> double; the endpoint check then accepts that distance.

#include <algorithm>
#include <concepts>

namespace flowmatch {

/// Valid expressions, for `const S s` and `double t` in [0, 1]:
/// - `s.value(t)` -> double: the schedule's value;
/// - `s.derivative(t)` -> double: its derivative in t (may be infinite only at t = 1).
template <class S>
concept Schedule = std::copy_constructible<S> && requires(const S& s, double t) {
  { s.value(t) } -> std::convertible_to<double>;
  { s.derivative(t) } -> std::convertible_to<double>;
};

/// A schedule meant for alpha_t (alpha_0 = 0, alpha_1 = 1). A distinct name so that diagnostics say
/// which role a type failed to fill.
template <class S>
concept AlphaSchedule = Schedule<S>;

/// A schedule meant for beta_t (beta_0 = 1, beta_1 = 0).
template <class S>
concept BetaSchedule = Schedule<S>;

namespace detail {

/// The distance from its ideal endpoints that a schedule declares (endpoint_tolerance(), if it
/// has one), and never less than 1e-9 (rounding in value(0) and value(1)).
template <Schedule S>
double endpoint_tolerance(const S& s) {
  constexpr double rounding = 1e-9;
  if constexpr (requires { { s.endpoint_tolerance() } -> std::convertible_to<double>; })
    return std::max(rounding, static_cast<double>(s.endpoint_tolerance()) + rounding);
  else
    return rounding;
}

}  // namespace detail
}  // namespace flowmatch
