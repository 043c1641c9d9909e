#pragma once
/// \file
/// The conditional flow matching trainer.

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/concepts.hpp"
#include "flowmatch/optim/concepts.hpp"
#include "flowmatch/path/concepts.hpp"
#include "flowmatch/path/training_batch.hpp"

namespace flowmatch {

/// What a training callback receives after each step.
struct TrainProgress {
  long long step = 0;       ///< steps completed in this call to train(), 1-based
  long long num_steps = 0;  ///< steps requested in this call to train()
  double loss = 0.0;        ///< the loss of the step just taken
  double seconds = 0.0;     ///< wall time since train() started
};

/// Conditional flow matching (Lipman et al., 2023): each step draws a fresh batch
/// (z ~ p_data, t ~ U[0, 1), x ~ p_t(. | z)), and takes one optimizer step on
///   L(theta) = mean over the batch and the d coordinates of (u_theta(x, t) - u_t(x | z))^2,
/// the seed's `torch.mean((u_theta - u_ref) ** 2)`. The same seed gives the same run.
///
/// The trainer holds a copy of the path and references to the model and the optimizer, which
/// must outlive it. All buffers are sized on the first step of a batch size; later steps allocate
/// nothing.
template <ConditionalPath Path, TrainableVectorField Model, Optimizer Opt>
class CFMTrainer {
 public:
  using Scalar = typename Model::Scalar;
  static_assert(std::same_as<Scalar, typename Opt::Scalar>,
                "flowmatch::CFMTrainer: the optimizer's scalar type must be the model's scalar type "
                "(for example MLPVectorField<float> with Adam<float>).");

  CFMTrainer(Path path, Model& model, Opt& optimizer, std::uint64_t seed = 0)
      : path_(std::move(path)), model_(model), optimizer_(optimizer), rng_(seed) {
    if (static_cast<Index>(path_.dim()) != static_cast<Index>(model_.dim()))
      detail::throw_dimension("flowmatch::CFMTrainer::CFMTrainer", "model", "dimension",
                              static_cast<long long>(model_.dim()), static_cast<long long>(path_.dim()));
  }

  /// One training step on a fresh batch of `batch_size` samples; returns its loss.
  /// Throws NumericalError (naming the step) if the loss is not finite; the model and the
  /// optimizer are then left as they were before the step.
  double step(Index batch_size) {
    if (batch_size <= 0)
      detail::throw_invalid("flowmatch::CFMTrainer::step", "batch_size", batch_size, "must be at least 1");
    batch_.resize(path_.dim(), batch_size);
    path_.sample_training_batch(rng_, batch_);
    double loss = 0.0;
    if constexpr (requires { model_.mse_loss_and_gradient(batch_.x, batch_.t, batch_.u, ws_); }) {
      // One fused pass (forward and backward block by block); the parameters are untouched until
      // the optimizer step below.
      loss = model_.mse_loss_and_gradient(batch_.x, batch_.t, batch_.u, ws_);
      require_finite_loss(loss);
    } else {
      if (grad_out_.cols() != batch_size || grad_out_.rows() != path_.dim()) grad_out_.resize(path_.dim(), batch_size);
      const Matrix<Scalar>& out = model_.forward_train(batch_.x, batch_.t, ws_);
      grad_out_.noalias() = out - batch_.u;
      const double count = static_cast<double>(grad_out_.size());
      loss = static_cast<double>(grad_out_.squaredNorm()) / count;
      require_finite_loss(loss);
      grad_out_ *= static_cast<Scalar>(2.0 / count);
      model_.backward(grad_out_, ws_);
    }
    optimizer_.step(model_.parameters(), model_.gradients());
    ++steps_done_;
    return loss;
  }

  /// Runs `num_steps` steps at `batch_size` and returns their losses. After each step it calls
  /// `callback(const TrainProgress&)` if one is given; a callback that returns bool stops training
  /// by returning false.
  template <class Callback = std::nullptr_t>
  std::vector<double> train(long long num_steps, Index batch_size, Callback&& callback = nullptr) {
    constexpr const char* where = "flowmatch::CFMTrainer::train";
    if (num_steps < 0) detail::throw_invalid(where, "num_steps", num_steps, "must be >= 0");
    if (batch_size <= 0) detail::throw_invalid(where, "batch_size", batch_size, "must be at least 1");
    std::vector<double> losses;
    losses.reserve(static_cast<std::size_t>(num_steps));
    const auto start = std::chrono::steady_clock::now();
    for (long long k = 1; k <= num_steps; ++k) {
      losses.push_back(step(batch_size));
      if constexpr (!std::is_same_v<std::decay_t<Callback>, std::nullptr_t>) {
        TrainProgress p;
        p.step = k;
        p.num_steps = num_steps;
        p.loss = losses.back();
        p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if constexpr (std::is_same_v<std::invoke_result_t<Callback&, const TrainProgress&>, bool>) {
          if (!callback(static_cast<const TrainProgress&>(p))) break;
        } else {
          callback(static_cast<const TrainProgress&>(p));
        }
      }
    }
    return losses;
  }

  const Path& path() const { return path_; }
  Model& model() { return model_; }
  Opt& optimizer() { return optimizer_; }
  /// The generator that draws every batch (its state is what a checkpoint must save).
  Rng& rng() { return rng_; }
  /// Steps taken by this trainer over its lifetime.
  long long steps_done() const { return steps_done_; }
  /// The batch of the last step (z, t, x and the target u).
  const TrainingBatch<Scalar>& last_batch() const { return batch_; }

 private:
  void require_finite_loss(double loss) const {
    if (!std::isfinite(loss))
      throw NumericalError("flowmatch::CFMTrainer::step: the loss is " + detail::to_string_value(loss) +
                           " at step " + std::to_string(steps_done_ + 1) +
                           "; the model and optimizer are left at the previous step");
  }

  Path path_;
  Model& model_;
  Opt& optimizer_;
  Rng rng_;
  TrainingBatch<Scalar> batch_;
  typename Model::Workspace ws_;
  Matrix<Scalar> grad_out_;
  long long steps_done_ = 0;
};

}  // namespace flowmatch
