#pragma once
/// \file
/// Learning-rate schedules, and ScheduledOptimizer: any optimizer whose learning rate follows one.

#include <cmath>
#include <concepts>
#include <numbers>
#include <string>
#include <string_view>
#include <utility>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/optim/concepts.hpp"

namespace flowmatch {

/// A learning-rate schedule is a factor of the base learning rate per update. Valid expression,
/// for `const L s` and the 0-based update index `k`: `s(k)` -> double, finite and >= 0 (like
/// PyTorch's LambdaLR). ConstantLR is the template to copy.
template <class L>
concept LearningRateSchedule = std::copy_constructible<L> && requires(const L& s, long long k) {
  { s(k) } -> std::convertible_to<double>;
};

/// A schedule may also have the state protocol of core/state.hpp (save_state / load_state): it
/// then saves its settings (a type tag and its hyper-parameters), which ScheduledOptimizer checks
/// on load. A schedule is a function of the update index, which ScheduledOptimizer keeps: it
/// holds no position of its own.

/// factor(k) = 1: the base learning rate throughout. State: attribute type = "constant".
struct ConstantLR {
  double operator()(long long /*k*/) const { return 1.0; }

  void save_state(StateWriter& w) const { w.text("type", "constant"); }
  void load_state(const StateReader& r) const { r.expect_text("type", "constant", "learning-rate schedule"); }
};

/// Linear warm-up, then cosine decay (Loshchilov and Hutter's SGDR without restarts, as in
/// Hugging Face's get_cosine_schedule_with_warmup), for the 0-based update k:
///   k < W:       factor = (k + 1) / W                        (reaches 1 at the last warm-up update)
///   W <= k < T:  factor = f + (1 - f) (1 + cos(pi (k - W) / (T - W))) / 2
///   k >= T:      factor = f
/// with W = warmup_steps, T = total_steps and f = final_factor (the floor, 0 by default).
/// State: attributes type = "warmup_cosine", warmup_steps, total_steps (integers), final_factor
/// (real), which must all match on load.
class WarmupCosineLR {
 public:
  /// 0 <= warmup_steps < total_steps; final_factor in [0, 1]. Throws InvalidArgument otherwise.
  WarmupCosineLR(long long warmup_steps, long long total_steps, double final_factor = 0.0)
      : warmup_(warmup_steps), total_(total_steps), final_(final_factor) {
    constexpr const char* where = "flowmatch::WarmupCosineLR::WarmupCosineLR";
    if (warmup_steps < 0) detail::throw_invalid(where, "warmup_steps", warmup_steps, "must be >= 0");
    if (total_steps <= warmup_steps)
      detail::throw_invalid(where, "total_steps", total_steps, "must be > warmup_steps (" + std::to_string(warmup_steps) + ")");
    if (!(final_factor >= 0.0 && final_factor <= 1.0))
      detail::throw_invalid(where, "final_factor", final_factor, "must lie in [0, 1]");
  }

  long long warmup_steps() const { return warmup_; }
  long long total_steps() const { return total_; }
  double final_factor() const { return final_; }

  void save_state(StateWriter& w) const {
    w.text("type", "warmup_cosine");
    w.integer("warmup_steps", warmup_);
    w.integer("total_steps", total_);
    w.real("final_factor", final_);
  }
  /// Checks that the saved schedule is this one (it has nothing to restore).
  void load_state(const StateReader& r) const {
    r.expect_text("type", "warmup_cosine", "learning-rate schedule");
    const auto expect_integer = [&r](std::string_view name, long long have) {
      const long long v = r.integer(name);
      if (v != have)
        r.fail("holds " + std::string(name) + " = " + std::to_string(v) + " at '" + r.prefix() + std::string(name) +
               "', the schedule passed has " + std::to_string(have));
    };
    expect_integer("warmup_steps", warmup_);
    expect_integer("total_steps", total_);
    r.expect_real("final_factor", final_, "final_factor");
  }

  double operator()(long long k) const {
    if (k < warmup_) return static_cast<double>(k + 1) / static_cast<double>(warmup_);
    if (k >= total_) return final_;
    const double progress = static_cast<double>(k - warmup_) / static_cast<double>(total_ - warmup_);
    return final_ + (1.0 - final_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  }

 private:
  long long warmup_, total_;
  double final_;
};

/// An optimizer whose learning rate follows a schedule: update k (0-based) runs the wrapped
/// optimizer with lr = base_lr * schedule(k), where base_lr is the wrapped optimizer's learning
/// rate when wrapped (or set_learning_rate's argument later). An update whose factor is 0 leaves
/// the parameters and the wrapped optimizer's state untouched (optimizers refuse lr = 0).
/// Satisfies Optimizer, so it drops into CFMTrainer unchanged:
///   ScheduledOptimizer opt(Adam<float>(1e-3), WarmupCosineLR(100, 5000));
///   CFMTrainer trainer(path, model, opt);
///
/// State (core/state.hpp; default scope "optimizer"), when Opt has the state protocol: attributes
/// type = "scheduled", base_lr (real, restored), steps (integer: the schedule's position,
/// restored); the wrapped optimizer's state under scope "inner" ("optimizer.inner.exp_avg", ...);
/// the schedule's settings under scope "schedule" when Schedule has the protocol. A schedule
/// without it (a plain function object) is saved by its position alone: nothing checks on load
/// that the schedule passed is the one that was saved, which is then the caller's business.
template <Optimizer Opt, LearningRateSchedule Schedule>
class ScheduledOptimizer {
 public:
  using Scalar = typename Opt::Scalar;

  ScheduledOptimizer(Opt optimizer, Schedule schedule)
      : inner_(std::move(optimizer)), schedule_(std::move(schedule)), base_lr_(inner_.learning_rate()) {}

  /// The learning rate the next update will use.
  double learning_rate() const { return base_lr_ * factor(steps_); }
  double base_learning_rate() const { return base_lr_; }
  /// Sets the base learning rate (finite and > 0; throws InvalidArgument otherwise).
  void set_learning_rate(double lr) {
    if (!(lr > 0.0 && std::isfinite(lr)))
      detail::throw_invalid("flowmatch::ScheduledOptimizer", "lr", lr, "the learning rate must be finite and > 0");
    base_lr_ = lr;
  }
  long long steps_taken() const { return steps_; }
  void reset(Index n) {
    inner_.reset(n);
    steps_ = 0;
  }

  template <class DP, class DG>
  void step(const Eigen::MatrixBase<DP>& params, const Eigen::MatrixBase<DG>& grads) {
    const double f = factor(steps_);
    if (f > 0.0) {
      inner_.set_learning_rate(base_lr_ * f);
      inner_.step(params, grads);
    }
    ++steps_;
  }

  static constexpr std::string_view state_scope = "optimizer";

  void save_state(StateWriter& w) const
    requires Stateful<Opt>
  {
    w.text("type", "scheduled");
    w.real("base_lr", base_lr_);
    w.integer("steps", steps_);
    StateWriter inner = w.scope("inner");
    inner_.save_state(inner);
    if constexpr (Stateful<Schedule>) {
      StateWriter schedule = w.scope("schedule");
      schedule_.save_state(schedule);
    }
  }
  /// Checks its own fields and the schedule's, then loads the wrapped optimizer (which checks
  /// its state before it changes anything), then commits; throws CheckpointMismatchError.
  void load_state(const StateReader& r)
    requires Stateful<Opt>
  {
    r.expect_text("type", "scheduled", "optimizer type");
    const double base_lr = r.positive_real("base_lr", "base learning rate");
    const long long steps = r.count("steps", "step count");
    if constexpr (Stateful<Schedule>) schedule_.load_state(r.scope("schedule"));
    inner_.load_state(r.scope("inner"));
    base_lr_ = base_lr;
    steps_ = steps;
  }

  Opt& inner() { return inner_; }
  const Opt& inner() const { return inner_; }
  const Schedule& schedule() const { return schedule_; }

 private:
  double factor(long long k) const {
    const double f = static_cast<double>(schedule_(k));
    if (!(f >= 0.0 && std::isfinite(f)))
      detail::throw_invalid("flowmatch::ScheduledOptimizer::step", "schedule(" + std::to_string(k) + ")", f,
                            "a learning-rate factor must be finite and >= 0");
    return f;
  }

  Opt inner_;
  Schedule schedule_;
  double base_lr_;
  long long steps_ = 0;
};

}  // namespace flowmatch
