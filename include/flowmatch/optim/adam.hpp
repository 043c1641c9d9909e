#pragma once
/// \file
/// Adam (Kingma and Ba, 2015) with PyTorch's defaults and update order.

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Adam, as `torch.optim.Adam` computes it (no weight decay, no amsgrad):
///   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
///   p <- p - (lr / (1 - b1^k)) m / (sqrt(v) / sqrt(1 - b2^k) + eps)      at step k = 1, 2, ...
/// Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8.
///
/// State (core/state.hpp; default scope "optimizer"): attributes type = "adam", lr, beta1, beta2,
/// eps (reals), steps (integer); tensors "exp_avg" and "exp_avg_sq" of shape [n] (n = 0 before
/// the first step, else the parameter count), PyTorch's names. Loading restores the learning
/// rate, the step count and the moments, and refuses other betas or eps.
template <Real S = float>
class Adam {
 public:
  using Scalar = S;

  explicit Adam(double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
      : beta1_(beta1), beta2_(beta2), eps_(eps) {
    constexpr const char* where = "flowmatch::Adam::Adam";
    set_learning_rate(lr);
    if (!(beta1 >= 0.0 && beta1 < 1.0)) detail::throw_invalid(where, "beta1", beta1, "must lie in [0, 1)");
    if (!(beta2 >= 0.0 && beta2 < 1.0)) detail::throw_invalid(where, "beta2", beta2, "must lie in [0, 1)");
    if (!(eps > 0.0 && std::isfinite(eps))) detail::throw_invalid(where, "eps", eps, "must be finite and > 0");
  }

  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) {
    if (!(lr > 0.0 && std::isfinite(lr)))
      detail::throw_invalid("flowmatch::Adam", "lr", lr, "the learning rate must be finite and > 0");
    lr_ = lr;
  }
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }
  long long steps_taken() const { return steps_; }
  const Vector<S>& first_moment() const { return m_; }
  const Vector<S>& second_moment() const { return v_; }

  /// Forgets all state and sizes it for n parameters.
  void reset(Index n) {
    m_ = Vector<S>::Zero(n);
    v_ = Vector<S>::Zero(n);
    steps_ = 0;
  }

  template <class DP, class DG>
  void step(const Eigen::MatrixBase<DP>& params_, const Eigen::MatrixBase<DG>& grads) {
    auto& params = detail::writable(params_);
    constexpr const char* where = "flowmatch::Adam::step";
    if (grads.size() != params.size()) detail::throw_dimension(where, "grads", "size", grads.size(), params.size());
    if (m_.size() != params.size()) {
      if (steps_ != 0) detail::throw_dimension(where, "params", "size", params.size(), m_.size());
      reset(params.size());
    }
    ++steps_;
    const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(steps_));
    const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(steps_));
    const S b1 = static_cast<S>(beta1_), b2 = static_cast<S>(beta2_);
    const S step_size = static_cast<S>(lr_ / bc1);
    const S inv_sqrt_bc2 = static_cast<S>(1.0 / std::sqrt(bc2));
    const S eps = static_cast<S>(eps_);
    m_.array() = b1 * m_.array() + (S(1) - b1) * grads.array();
    v_.array() = b2 * v_.array() + (S(1) - b2) * grads.array().square();
    params.array() -= step_size * m_.array() / (v_.array().sqrt() * inv_sqrt_bc2 + eps);
  }

  static constexpr std::string_view state_scope = "optimizer";

  void save_state(StateWriter& w) const {
    w.text("type", "adam");
    save_state_fields(w);
  }
  /// Checks everything (type, betas, eps, lr > 0, steps >= 0, moments of equal size, finite,
  /// exp_avg_sq >= 0) before it changes anything; throws CheckpointMismatchError.
  void load_state(const StateReader& r) {
    r.expect_text("type", "adam", "optimizer type");
    load_state_fields(r);
  }
  /// Adam's attributes and tensors without the type tag, for optimizers built on Adam (AdamW
  /// writes its own tag and these fields under the same scope).
  void save_state_fields(StateWriter& w) const {
    w.real("lr", lr_);
    w.real("beta1", beta1_);
    w.real("beta2", beta2_);
    w.real("eps", eps_);
    w.integer("steps", steps_);
    w.vector("exp_avg", m_);
    w.vector("exp_avg_sq", v_);
  }
  void load_state_fields(const StateReader& r) {
    const double lr = r.positive_real("lr", "learning rate");
    r.expect_real("beta1", beta1_, "Adam beta1");
    r.expect_real("beta2", beta2_, "Adam beta2");
    r.expect_real("eps", eps_, "Adam eps");
    const long long steps = r.count("steps", "step count");
    Vector<S> m = r.finite_vector<S>("exp_avg", "Adam's first moment");
    const Index n = m.size();
    Vector<S> v = r.finite_vector<S>("exp_avg_sq", "Adam's second moment", n);
    if (n == 0 && steps != 0)
      r.fail("holds " + std::to_string(steps) + " Adam steps but no moments (tensor '" + r.prefix() + "exp_avg' is empty)");
    if (n > 0 && v.minCoeff() < S(0))
      r.fail("tensor '" + r.prefix() + "exp_avg_sq' holds a negative second moment " +
             detail::format_real(static_cast<double>(v.minCoeff())));
    lr_ = lr;
    m_ = std::move(m);
    v_ = std::move(v);
    steps_ = steps;
  }

  /// Restores the state (for checkpoints): moments and step count.
  void set_state(Vector<S> m, Vector<S> v, long long steps) {
    if (m.size() != v.size()) detail::throw_dimension("flowmatch::Adam::set_state", "v", "size", v.size(), m.size());
    if (steps < 0) detail::throw_invalid("flowmatch::Adam::set_state", "steps", steps, "must be >= 0");
    m_ = std::move(m);
    v_ = std::move(v);
    steps_ = steps;
  }

 private:
  double lr_ = 1e-3;
  double beta1_, beta2_, eps_;
  long long steps_ = 0;
  Vector<S> m_, v_;
};

}  // namespace flowmatch
