#pragma once
/// \file
/// The fixed-step steppers by name, for examples and tools that take a solver on the command line:
/// one compile-time list, `FixedSteppers<S>`: the Runge-Kutta steppers, then the multistep AB2 and
/// AB3 (one drift evaluation a step, St::stages == 1). A new fixed-step stepper is its header (a
/// class with `static constexpr std::string_view name`, `order` and `stages`, see
/// explicit_steppers.hpp) plus one line in that list; stepper_names(), visit_stepper() and every
/// `--solver` option follow.
///
/// \code
///   flowmatch::visit_stepper<float>(opt.solver, [&]<class St>(std::type_identity<St>) {
///     flowmatch::ODESimulator<ODE, St>(ode).simulate_inplace(x, 0.0, 1.0, nfe / St::stages);
///   });
/// \endcode

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/ode/explicit_steppers.hpp"
#include "flowmatch/ode/multistep.hpp"

namespace flowmatch {

/// Every fixed-step stepper with scalar S, in the order stepper_names() lists them.
template <Real S>
using FixedSteppers = std::tuple<EulerStepper<S>, MidpointStepper<S>, HeunStepper<S>, RK4Stepper<S>,
                                 AdamsBashforth2Stepper<S>, AdamsBashforth3Stepper<S>>;

/// The names of FixedSteppers, in its order: {"euler", "midpoint", "heun", "rk4", "ab2", "ab3"}.
constexpr auto stepper_names() {
  return []<class... St>(std::type_identity<std::tuple<St...>>) {
    return std::array<std::string_view, sizeof...(St)>{St::name...};
  }(std::type_identity<FixedSteppers<double>>{});
}

/// The names joined by ", " (for messages and help texts).
inline std::string stepper_name_list() {
  std::string list;
  for (const std::string_view name : stepper_names()) list.append(list.empty() ? "" : ", ").append(name);
  return list;
}

namespace detail {

template <class List, std::size_t I, class F, class R>
R visit_stepper_at(std::string_view name, F& f) {
  if constexpr (I == std::tuple_size_v<List>) {
    throw_invalid("flowmatch::visit_stepper", "name", std::string(name), "must be one of " + stepper_name_list());
  } else {
    using St = std::tuple_element_t<I, List>;
    if (name == St::name) return f(std::type_identity<St>{});
    return visit_stepper_at<List, I + 1, F, R>(name, f);
  }
}

}  // namespace detail

/// Calls `f(std::type_identity<St>{})` for the stepper St of `FixedSteppers<S>` named `name` and
/// returns what f returns (the same type for every stepper). An unknown name throws
/// InvalidArgument listing the known names.
template <Real S, class F>
decltype(auto) visit_stepper(std::string_view name, F&& f) {
  using List = FixedSteppers<S>;
  using R = std::invoke_result_t<F&, std::type_identity<std::tuple_element_t<0, List>>>;
  return detail::visit_stepper_at<List, 0, F, R>(name, f);
}

/// Whether `name` names a fixed-step stepper.
constexpr bool is_stepper_name(std::string_view name) {
  for (const std::string_view known : stepper_names())
    if (known == name) return true;
  return false;
}

}  // namespace flowmatch
