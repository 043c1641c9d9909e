#pragma once
/// \file
/// The five sbibm tasks (gaussian_linear, two_moons, gaussian_mixture, slcp, bernoulli_glm), and
/// choosing one by name at run time: visit_task(name, f) calls f with the task object, so code
/// written once as a generic lambda runs on any of them without virtual dispatch.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/sbi/task.hpp"
#include "flowmatch/sbi/tasks/bernoulli_glm.hpp"
#include "flowmatch/sbi/tasks/gaussian_linear.hpp"
#include "flowmatch/sbi/tasks/gaussian_mixture.hpp"
#include "flowmatch/sbi/tasks/slcp.hpp"
#include "flowmatch/sbi/tasks/two_moons.hpp"

namespace flowmatch::sbi {

static_assert(Task<GaussianLinear> && Task<TwoMoons> && Task<GaussianMixture> && Task<SLCP> &&
              Task<BernoulliGLM>);
static_assert(AnalyticReferenceTask<GaussianLinear> && AnalyticReferenceTask<TwoMoons> &&
              AnalyticReferenceTask<GaussianMixture>);
static_assert(!AnalyticReferenceTask<SLCP> && !AnalyticReferenceTask<BernoulliGLM>);

/// The names of the five tasks, in sbibm's order of the paper's table.
inline std::vector<std::string_view> task_names() {
  return {GaussianLinear::kName, TwoMoons::kName, GaussianMixture::kName, SLCP::kName, BernoulliGLM::kName};
}

/// Whether `name` is one of task_names().
inline bool is_task_name(std::string_view name) {
  for (std::string_view known : task_names())
    if (name == known) return true;
  return false;
}

namespace detail {

/// Throws InvalidArgument naming `name` and listing the valid names.
[[noreturn]] inline void throw_unknown_task(std::string_view where, std::string_view name) {
  std::string valid;
  for (std::string_view known : task_names()) valid.append(valid.empty() ? "" : ", ").append(known);
  flowmatch::detail::throw_invalid(where, "task", "'" + std::string(name) + "'",
                                   "unknown task; the tasks are " + valid);
}

}  // namespace detail

/// Calls f(Task{}) with a default-constructed object of the task named `name` and returns what f
/// returns (f must return the same type for every task: a generic lambda usually does). Throws
/// InvalidArgument naming `name` and listing the five valid names for any other name.
template <class F>
decltype(auto) visit_task(std::string_view name, F&& f) {
  if (name == GaussianLinear::kName) return std::forward<F>(f)(GaussianLinear{});
  if (name == TwoMoons::kName) return std::forward<F>(f)(TwoMoons{});
  if (name == GaussianMixture::kName) return std::forward<F>(f)(GaussianMixture{});
  if (name == SLCP::kName) return std::forward<F>(f)(SLCP{});
  if (name == BernoulliGLM::kName) return std::forward<F>(f)(BernoulliGLM{});
  detail::throw_unknown_task("flowmatch::sbi::visit_task", name);
}

}  // namespace flowmatch::sbi
