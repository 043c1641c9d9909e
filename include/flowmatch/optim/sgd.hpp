#pragma once
/// \file
/// Stochastic gradient descent with optional (Nesterov) momentum: the simplest optimizer policy,
/// and the one to copy when writing your own.

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

/// SGD as `torch.optim.SGD` computes it (dampening 0, no weight decay):
///   without momentum: p <- p - lr g;
///   with momentum mu: buf <- g at the first step, then buf <- mu buf + g;
///                     p <- p - lr buf (or p - lr (g + mu buf) with Nesterov).
///
/// State (core/state.hpp; default scope "optimizer"): attributes type = "sgd", lr, momentum
/// (reals), nesterov (flag), steps (integer); tensor "momentum_buffer" of shape [n] (n = 0
/// without momentum or before the first step). Loading restores the learning rate, the step
/// count and the buffer, and refuses another momentum or Nesterov flag.
template <Real S = float>
class SGD {
 public:
  using Scalar = S;

  explicit SGD(double lr, double momentum = 0.0, bool nesterov = false)
      : momentum_(momentum), nesterov_(nesterov) {
    set_learning_rate(lr);
    if (!(momentum >= 0.0 && momentum < 1.0))
      detail::throw_invalid("flowmatch::SGD::SGD", "momentum", momentum, "must lie in [0, 1)");
    if (nesterov && momentum == 0.0)
      detail::throw_invalid("flowmatch::SGD::SGD", "momentum", momentum, "Nesterov momentum needs momentum > 0");
  }

  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) {
    if (!(lr > 0.0 && std::isfinite(lr)))
      detail::throw_invalid("flowmatch::SGD", "lr", lr, "the learning rate must be finite and > 0");
    lr_ = lr;
  }
  double momentum() const { return momentum_; }
  bool nesterov() const { return nesterov_; }
  long long steps_taken() const { return steps_; }
  const Vector<S>& momentum_buffer() const { return buf_; }

  void reset(Index n) {
    buf_ = momentum_ > 0.0 ? Vector<S>::Zero(n) : Vector<S>();
    steps_ = 0;
  }

  template <class DP, class DG>
  void step(const Eigen::MatrixBase<DP>& params_, const Eigen::MatrixBase<DG>& grads) {
    auto& params = detail::writable(params_);
    if (grads.size() != params.size())
      detail::throw_dimension("flowmatch::SGD::step", "grads", "size", grads.size(), params.size());
    const S lr = static_cast<S>(lr_);
    if (momentum_ == 0.0) {
      params.noalias() -= lr * grads;
    } else {
      if (buf_.size() != params.size()) reset(params.size());
      const S mu = static_cast<S>(momentum_);
      if (steps_ == 0)
        buf_ = grads;
      else
        buf_ = mu * buf_ + grads;
      if (nesterov_)
        params.noalias() -= lr * (grads + mu * buf_);
      else
        params.noalias() -= lr * buf_;
    }
    ++steps_;
  }

  static constexpr std::string_view state_scope = "optimizer";

  void save_state(StateWriter& w) const {
    w.text("type", "sgd");
    w.real("lr", lr_);
    w.real("momentum", momentum_);
    w.flag("nesterov", nesterov_);
    w.integer("steps", steps_);
    w.vector("momentum_buffer", buf_);
  }
  /// Checks everything (type, momentum, Nesterov flag, lr > 0, steps >= 0, a buffer only with
  /// momentum, finite) before it changes anything; throws CheckpointMismatchError.
  void load_state(const StateReader& r) {
    r.expect_text("type", "sgd", "optimizer type");
    const double lr = r.positive_real("lr", "learning rate");
    r.expect_real("momentum", momentum_, "SGD momentum");
    const bool nesterov = r.flag("nesterov");
    if (nesterov != nesterov_)
      r.fail(std::string("holds SGD nesterov = ") + (nesterov ? "true" : "false") + " at '" + r.prefix() +
             "nesterov', the part passed has " + (nesterov_ ? "true" : "false"));
    const long long steps = r.count("steps", "step count");
    Vector<S> buffer = r.finite_vector<S>("momentum_buffer", "SGD's momentum buffer");
    const Index n = buffer.size();
    if (momentum_ == 0.0 && n != 0)
      r.fail("tensor '" + r.prefix() + "momentum_buffer' holds " + std::to_string(n) +
             " values, SGD without momentum has no buffer");
    if (momentum_ > 0.0 && n == 0 && steps != 0)
      r.fail("holds " + std::to_string(steps) + " SGD momentum steps but no buffer (tensor '" + r.prefix() +
             "momentum_buffer' is empty)");
    lr_ = lr;
    buf_ = std::move(buffer);
    steps_ = steps;
  }

  /// Restores the state (for checkpoints): the momentum buffer (empty, or one entry per parameter
  /// when momentum > 0) and the step count.
  void set_state(Vector<S> buffer, long long steps) {
    constexpr const char* where = "flowmatch::SGD::set_state";
    if (steps < 0) detail::throw_invalid(where, "steps", steps, "must be >= 0");
    if (momentum_ == 0.0 && buffer.size() != 0)
      detail::throw_dimension(where, "buffer", "size", buffer.size(), 0);
    buf_ = std::move(buffer);
    steps_ = steps;
  }

 private:
  double lr_ = 1e-2;
  double momentum_;
  bool nesterov_;
  long long steps_ = 0;
  Vector<S> buf_;
};

}  // namespace flowmatch
