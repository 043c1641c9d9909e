#pragma once
/// \file
/// The conditional flow matching trainer.

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
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
  long long step = 0;        ///< steps completed in this call to train(), 1-based
  long long num_steps = 0;   ///< steps requested in this call to train()
  double loss = 0.0;         ///< the loss of the step just taken (NaN if its batch was skipped)
  double seconds = 0.0;      ///< wall time since train() started
  long long steps_done = 0;  ///< the trainer's step count over its lifetime (resumed runs included)
  bool skipped = false;      ///< the step's batch gave a non-finite value and was skipped
};

/// What the trainer does when a step's loss (or, if checked, gradient norm) is not finite.
enum class NonFinitePolicy {
  Throw,      ///< throw NumericalError naming the step; model and optimizer stay at the last good step
  SkipBatch,  ///< drop the batch (no update), count it in skipped_steps() and go on
};

/// Safety settings of a CFMTrainer. The defaults check the loss only and throw on a non-finite one.
struct TrainerOptions {
  NonFinitePolicy on_non_finite = NonFinitePolicy::Throw;
  /// Also check that the gradient's norm is finite before each update (one pass over the gradient).
  bool check_gradient = false;
  /// If > 0, scale the gradient down to this global L2 norm when it is larger (clipping by norm,
  /// as torch.nn.utils.clip_grad_norm_); implies the gradient check.
  double max_grad_norm = 0.0;
  /// With SkipBatch: throw NumericalError once more than this many batches in a row were skipped
  /// (a diverged model never recovers by skipping).
  long long max_consecutive_skips = 100;
};

/// Conditional flow matching (Lipman et al., 2023): each step draws a fresh batch
/// (z ~ p_data, t ~ U[0, 1), x ~ p_t(. | z)), and takes one optimizer step on
///   L(theta) = mean over the batch and the d coordinates of (u_theta(x, t) - u_t(x | z))^2,
/// the reference implementation's `torch.mean((u_theta - u_ref) ** 2)`. The same seed gives the same run.
///
/// The trainer holds a copy of the path and references to the model and the optimizer, which
/// must outlive it. All buffers are sized on the first step of a batch size; later steps allocate
/// nothing (guards and clipping included).
///
/// Guards (TrainerOptions): every step checks its loss, and optionally the gradient's norm, before
/// the update; a non-finite value throws NumericalError naming the step (the model and optimizer
/// are left as after the last good step) or, by policy, skips the batch. Optional clipping of the
/// gradient by its global norm.
template <ConditionalPath Path, TrainableVectorField Model, Optimizer Opt>
class CFMTrainer {
 public:
  using Scalar = typename Model::Scalar;
  static_assert(std::same_as<Scalar, typename Opt::Scalar>,
                "flowmatch::CFMTrainer: the optimizer's scalar type must be the model's scalar type "
                "(for example MLPVectorField<float> with Adam<float>).");

  CFMTrainer(Path path, Model& model, Opt& optimizer, std::uint64_t seed = 0, TrainerOptions options = {})
      : path_(std::move(path)), model_(model), optimizer_(optimizer), rng_(seed) {
    if (static_cast<Index>(path_.dim()) != static_cast<Index>(model_.dim()))
      detail::throw_dimension("flowmatch::CFMTrainer::CFMTrainer", "model", "dimension",
                              static_cast<long long>(model_.dim()), static_cast<long long>(path_.dim()));
    set_options(options);
  }

  const TrainerOptions& options() const { return options_; }
  void set_options(const TrainerOptions& options) {
    constexpr const char* where = "flowmatch::CFMTrainer::set_options";
    if (!(options.max_grad_norm >= 0.0 && std::isfinite(options.max_grad_norm)))
      detail::throw_invalid(where, "max_grad_norm", options.max_grad_norm, "must be finite and >= 0 (0: no clipping)");
    if (options.max_consecutive_skips < 1)
      detail::throw_invalid(where, "max_consecutive_skips", options.max_consecutive_skips, "must be at least 1");
    options_ = options;
  }

  /// One training step on a fresh batch of `batch_size` samples; returns its loss.
  /// If the loss (or, with options().check_gradient or clipping, the gradient's norm) is not
  /// finite: with NonFinitePolicy::Throw, throws NumericalError naming the step, and the model and
  /// the optimizer are left as they were before the step; with SkipBatch, makes no update, counts
  /// the step in skipped_steps() and returns NaN.
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
      if (!std::isfinite(loss)) return reject("loss", loss);
    } else {
      if (grad_out_.cols() != batch_size || grad_out_.rows() != path_.dim()) grad_out_.resize(path_.dim(), batch_size);
      const Matrix<Scalar>& out = model_.forward_train(batch_.x, batch_.t, ws_);
      grad_out_.noalias() = out - batch_.u;
      const double count = static_cast<double>(grad_out_.size());
      loss = static_cast<double>(grad_out_.squaredNorm()) / count;
      if (!std::isfinite(loss)) return reject("loss", loss);
      grad_out_ *= static_cast<Scalar>(2.0 / count);
      model_.backward(grad_out_, ws_);
    }
    if (options_.check_gradient || options_.max_grad_norm > 0.0) {
      // In double: a float sum of squares overflows long before the gradient itself does.
      const double norm = std::sqrt(model_.gradients().template cast<double>().squaredNorm());
      last_gradient_norm_ = norm;
      if (!std::isfinite(norm)) return reject("gradient norm", norm);
      if (options_.max_grad_norm > 0.0 && norm > options_.max_grad_norm) {
        model_.gradients() *= static_cast<Scalar>(options_.max_grad_norm / norm);
        ++clipped_steps_;
      }
    }
    optimizer_.step(model_.parameters(), model_.gradients());
    ++steps_done_;
    consecutive_skips_ = 0;
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
      const long long skipped_before = skipped_steps_;
      losses.push_back(step(batch_size));
      if constexpr (!std::is_same_v<std::decay_t<Callback>, std::nullptr_t>) {
        TrainProgress p;
        p.step = k;
        p.num_steps = num_steps;
        p.loss = losses.back();
        p.steps_done = steps_done_;
        p.skipped = skipped_steps_ != skipped_before;
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
  const Model& model() const { return model_; }
  Opt& optimizer() { return optimizer_; }
  const Opt& optimizer() const { return optimizer_; }
  /// The generator that draws every batch (its state is what a checkpoint must save).
  Rng& rng() { return rng_; }
  const Rng& rng() const { return rng_; }
  /// Steps taken by this trainer over its lifetime (skipped batches included; a step that threw is
  /// not counted).
  long long steps_done() const { return steps_done_; }
  /// Sets the step count (checkpoints restore it; it numbers the steps in error messages).
  void set_steps_done(long long steps) {
    if (steps < 0) detail::throw_invalid("flowmatch::CFMTrainer::set_steps_done", "steps", steps, "must be >= 0");
    steps_done_ = steps;
  }
  /// Batches skipped under NonFinitePolicy::SkipBatch, over the trainer's lifetime.
  long long skipped_steps() const { return skipped_steps_; }
  /// Steps whose gradient was scaled down by clipping.
  long long clipped_steps() const { return clipped_steps_; }
  /// The gradient norm of the last step that computed it (check_gradient or clipping), before clipping.
  double last_gradient_norm() const { return last_gradient_norm_; }
  /// The batch of the last step (z, t, x and the target u).
  const TrainingBatch<Scalar>& last_batch() const { return batch_; }

 private:
  Path path_;
  Model& model_;
  Opt& optimizer_;
  Rng rng_;
  TrainingBatch<Scalar> batch_;
  typename Model::Workspace ws_;
  Matrix<Scalar> grad_out_;
  long long steps_done_ = 0;
  long long skipped_steps_ = 0;
  long long clipped_steps_ = 0;
  long long consecutive_skips_ = 0;
  double last_gradient_norm_ = 0.0;
  TrainerOptions options_;

  // A non-finite `what` at the step being taken: throw, or skip the batch (see step()).
  double reject(const char* what, double value) {
    const long long step = steps_done_ + 1;
    if (options_.on_non_finite == NonFinitePolicy::SkipBatch) {
      if (consecutive_skips_ + 1 > options_.max_consecutive_skips)
        throw NumericalError("flowmatch::CFMTrainer::step: the " + std::string(what) + " is " +
                             detail::to_string_value(value) + " at step " + std::to_string(step) + ", the " +
                             std::to_string(consecutive_skips_ + 1) +
                             "th non-finite batch in a row (max_consecutive_skips = " +
                             std::to_string(options_.max_consecutive_skips) +
                             "); the model and optimizer are left at the last good step");
      ++consecutive_skips_;
      ++skipped_steps_;
      ++steps_done_;
      return std::numeric_limits<double>::quiet_NaN();
    }
    throw NumericalError("flowmatch::CFMTrainer::step: the " + std::string(what) + " is " +
                         detail::to_string_value(value) + " at step " + std::to_string(step) +
                         "; the model and optimizer are left at the previous step");
  }
};

}  // namespace flowmatch
