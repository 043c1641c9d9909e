#pragma once
/// \file
/// AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay, as PyTorch computes it.

#include <cmath>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/optim/adam.hpp"

namespace flowmatch {

/// `torch.optim.AdamW` (no amsgrad): at step k = 1, 2, ...
///   p <- p (1 - lr wd)                                       (decoupled weight decay)
///   then Adam's update: m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
///   p <- p - (lr / (1 - b1^k)) m / (sqrt(v) / sqrt(1 - b2^k) + eps).
/// Defaults: lr 1e-3, weight decay 1e-2, betas (0.9, 0.999), eps 1e-8. Built on Adam: the moments
/// and the step count are the wrapped Adam's.
///
/// State (core/state.hpp; default scope "optimizer"): attributes type = "adamw", weight_decay,
/// and Adam's own under the same names (lr, beta1, beta2, eps, steps; tensors exp_avg,
/// exp_avg_sq). Loading restores the learning rate, the step count and the moments, and refuses
/// another weight decay, betas or eps.
template <Real S = float>
class AdamW {
 public:
  using Scalar = S;

  /// weight_decay finite and >= 0 (InvalidArgument otherwise); the rest as Adam.
  explicit AdamW(double lr = 1e-3, double weight_decay = 1e-2, double beta1 = 0.9, double beta2 = 0.999,
                 double eps = 1e-8)
      : adam_(lr, beta1, beta2, eps), weight_decay_(weight_decay) {
    if (!(weight_decay >= 0.0 && std::isfinite(weight_decay)))
      detail::throw_invalid("flowmatch::AdamW::AdamW", "weight_decay", weight_decay, "must be finite and >= 0");
  }

  double learning_rate() const { return adam_.learning_rate(); }
  void set_learning_rate(double lr) { adam_.set_learning_rate(lr); }
  double weight_decay() const { return weight_decay_; }
  long long steps_taken() const { return adam_.steps_taken(); }
  void reset(Index n) { adam_.reset(n); }
  const Adam<S>& adam() const { return adam_; }

  static constexpr std::string_view state_scope = "optimizer";

  void save_state(StateWriter& w) const {
    w.text("type", "adamw");
    w.real("weight_decay", weight_decay_);
    adam_.save_state_fields(w);
  }
  /// Checks everything (see Adam::load_state) before it changes anything.
  void load_state(const StateReader& r) {
    r.expect_text("type", "adamw", "optimizer type");
    r.expect_real("weight_decay", weight_decay_, "AdamW weight_decay");
    adam_.load_state_fields(r);
  }

  template <class DP, class DG>
  void step(const Eigen::MatrixBase<DP>& params_, const Eigen::MatrixBase<DG>& grads) {
    auto& params = detail::writable(params_);
    if (grads.size() != params.size())
      detail::throw_dimension("flowmatch::AdamW::step", "grads", "size", grads.size(), params.size());
    if (adam_.steps_taken() != 0 && adam_.first_moment().size() != params.size())
      detail::throw_dimension("flowmatch::AdamW::step", "params", "size", params.size(), adam_.first_moment().size());
    if (weight_decay_ > 0.0) params *= static_cast<S>(1.0 - adam_.learning_rate() * weight_decay_);
    adam_.step(params, grads);
  }

 private:
  Adam<S> adam_;
  double weight_decay_;
};

}  // namespace flowmatch
