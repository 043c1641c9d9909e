#pragma once
/// \file
/// An exponential moving average of a parameter vector (EMA of the weights, used for sampling).

#include <cmath>
#include <utility>

#include "flowmatch/core/error.hpp"
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
