#pragma once
/// \file
/// An exponential moving average of a parameter vector (EMA of the weights, used for sampling).

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

/// avg_1 = p_1, avg_k = decay avg_{k-1} + (1 - decay) p_k for the k-th call of update(p). Kept
/// apart from the trainer and the optimizer: update it after each step (for example in the
/// trainer's callback) and copy the average into a model, or into a copy of one, for sampling:
///   ExponentialMovingAverage<float> ema(0.999);
///   trainer.train(steps, batch, [&](const TrainProgress&) { ema.update(model.parameters()); });
///   MLPVectorField<float> sampler = model;  ema.copy_to(sampler.parameters());
/// Computed in S (as PyTorch keeps an EMA in the parameters' dtype). After the first update,
/// update() allocates nothing.
///
/// State (core/state.hpp; default scope "ema"): attributes type = "ema", decay (real), updates
/// (integer); tensor "average" of shape [n] (n = 0 before the first update). Loading restores the
/// average and the update count, and refuses another decay.
template <Real S = float>
class ExponentialMovingAverage {
 public:
  using Scalar = S;

  /// decay in [0, 1) (0.999 or 0.9999 are usual). Throws InvalidArgument otherwise.
  explicit ExponentialMovingAverage(double decay) : decay_(decay) {
    if (!(decay >= 0.0 && decay < 1.0))
      detail::throw_invalid("flowmatch::ExponentialMovingAverage::ExponentialMovingAverage", "decay", decay,
                            "must lie in [0, 1)");
  }

  double decay() const { return decay_; }
  long long updates() const { return updates_; }
  const Vector<S>& average() const { return average_; }

  /// Folds the current parameters into the average (the first call copies them). Throws
  /// DimensionMismatch if their size changed.
  template <class D>
  void update(const Eigen::MatrixBase<D>& params) {
    if (updates_ == 0) {
      average_ = params.template cast<S>();
    } else {
      if (params.size() != average_.size())
        detail::throw_dimension("flowmatch::ExponentialMovingAverage::update", "params", "size", params.size(),
                                average_.size());
      const S d = static_cast<S>(decay_);
      average_ = d * average_ + (S(1) - d) * params.template cast<S>();
    }
    ++updates_;
  }

  /// Writes the average into `params` (same size; throws InvalidArgument before any update).
  template <class D>
  void copy_to(const Eigen::MatrixBase<D>& params_) const {
    auto& params = detail::writable(params_);
    constexpr const char* where = "flowmatch::ExponentialMovingAverage::copy_to";
    if (updates_ == 0) detail::throw_invalid(where, "updates()", 0, "no average yet: call update() first");
    if (params.size() != average_.size()) detail::throw_dimension(where, "params", "size", params.size(), average_.size());
    params = average_.template cast<typename D::Scalar>();
  }

  static constexpr std::string_view state_scope = "ema";

  void save_state(StateWriter& w) const {
    w.text("type", "ema");
    w.real("decay", decay_);
    w.integer("updates", updates_);
    w.vector("average", average_);
  }
  /// Checks everything (type, decay, updates >= 0, an average exactly when updates > 0, finite)
  /// before it changes anything; throws CheckpointMismatchError.
  void load_state(const StateReader& r) {
    r.expect_text("type", "ema", "type");
    r.expect_real("decay", decay_, "EMA decay");
    const long long updates = r.count("updates", "update count");
    Vector<S> average = r.finite_vector<S>("average", "the average");
    const Index n = average.size();
    if ((updates == 0) != (n == 0))
      r.fail("holds " + std::to_string(updates) + " EMA updates and an average of " + std::to_string(n) +
             " values (an average exists exactly after the first update)");
    average_ = std::move(average);
    updates_ = updates;
  }

  /// Forgets the average.
  void reset() {
    updates_ = 0;
    average_.resize(0);
  }

 private:
  double decay_;
  long long updates_ = 0;
  Vector<S> average_;
};

}  // namespace flowmatch
