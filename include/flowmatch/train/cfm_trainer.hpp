#pragma once
/// \file
/// The conditional flow matching trainer.

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"
#include "flowmatch/nn/concepts.hpp"
#include "flowmatch/optim/concepts.hpp"
#include "flowmatch/path/concepts.hpp"
#include "flowmatch/path/time_density.hpp"
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
  /// Conditional models only: the probability, in [0, 1), that a sample's condition is dropped
  /// (its presence flag set to 0) at each step, drawn per sample from the trainer's generator;
  /// the model then learns the unconditional field too, for classifier-free guidance (0.1 - 0.2
  /// is usual).
  double condition_dropout = 0.0;
};

/// The trainer's own state (scope "trainer"): its step counts and the generator that draws every
/// batch. CFMTrainer::state_parts() lists it next to the model and the optimizer.
/// Attributes steps_done, skipped_steps, clipped_steps, consecutive_skips (integers >= 0) and the
/// tensor "rng" (U64, shape [4]: Rng::state()).
struct TrainerCounters {
  Rng rng;
  long long steps_done = 0;
  long long skipped_steps = 0;
  long long clipped_steps = 0;
  long long consecutive_skips = 0;
  /// The training-time density of the path (its describe(), e.g. "logit_normal(location=0,
  /// scale=1)"; empty when the path has none). Set by the trainer, not by loading: a checkpoint
  /// written with another density is refused (a file without it, from before, is accepted).
  std::string time_density;

  void save_state(StateWriter& w) const {
    if (!time_density.empty()) w.text("time_density", time_density);
    w.integer("steps_done", steps_done);
    w.integer("skipped_steps", skipped_steps);
    w.integer("clipped_steps", clipped_steps);
    w.integer("consecutive_skips", consecutive_skips);
    w.tensor("rng", rng.state().data(), {4});
  }
  /// Checks every count (an integer in [0, steps_done], steps_done >= 0) and the generator's
  /// state (not all zero) before it changes anything; CheckpointMismatchError otherwise.
  void load_state(const StateReader& r) {
    if (r.has_attribute("time_density")) {
      const std::string& saved = r.text("time_density");
      if (!time_density.empty() && saved != time_density)
        r.fail("was trained with the time density '" + saved + "' ('" + r.prefix() +
               "time_density'), this trainer draws '" + time_density +
               "': build the path with the same density to resume");
    }
    const long long steps = r.integer("steps_done");
    if (steps < 0) r.fail("holds steps_done = " + std::to_string(steps) + " at '" + r.prefix() + "steps_done' (< 0)");
    const auto count = [&](const char* name) {
      const long long v = r.integer(name);
      if (v < 0 || v > steps)
        r.fail("holds " + std::string(name) + " = " + std::to_string(v) + " at '" + r.prefix() + name +
               "', outside [0, steps_done = " + std::to_string(steps) + "]");
      return v;
    };
    const long long skipped = count("skipped_steps"), clipped = count("clipped_steps"),
                    consecutive = count("consecutive_skips");
    if (consecutive > skipped)
      r.fail("holds consecutive_skips = " + std::to_string(consecutive) + " > skipped_steps = " +
             std::to_string(skipped));
    Rng::State state{};
    r.read("rng", {4}, state.data());
    if (state[0] == 0 && state[1] == 0 && state[2] == 0 && state[3] == 0)
      r.fail("holds the all-zero generator state at '" + r.prefix() + "rng' (not a valid xoshiro256++ state)");
    rng.set_state(state);
    steps_done = steps;
    skipped_steps = skipped;
    clipped_steps = clipped;
    consecutive_skips = consecutive;
  }
};

namespace detail {

/// Calls every callback with `p`; false if any of those that return bool returned false (all are
/// called either way).
template <class... Callbacks>
bool call_callbacks(const TrainProgress& p, Callbacks&... callbacks) {
  bool go_on = true;
  const auto one = [&](auto& cb) {
    if constexpr (std::is_same_v<std::invoke_result_t<decltype(cb), const TrainProgress&>, bool>) {
      if (!cb(p)) go_on = false;
    } else {
      cb(p);
    }
  };
  (one(callbacks), ...);
  return go_on;
}

/// The loop of a trainer's train(): `num_steps` calls of trainer.step(batch_size), each followed
/// by the callbacks (see CFMTrainer::train). Shared by CFMTrainer and the data-parallel trainer.
template <class Trainer, class... Callbacks>
std::vector<double> train_loop(Trainer& trainer, const char* where, long long num_steps, Index batch_size,
                               Callbacks&... callbacks) {
  if (num_steps < 0) throw_invalid(where, "num_steps", num_steps, "must be >= 0");
  if (batch_size <= 0) throw_invalid(where, "batch_size", batch_size, "must be at least 1");
  std::vector<double> losses;
  losses.reserve(static_cast<std::size_t>(num_steps));
  const auto start = std::chrono::steady_clock::now();
  for (long long k = 1; k <= num_steps; ++k) {
    const long long skipped_before = trainer.skipped_steps();
    losses.push_back(trainer.step(batch_size));
    if constexpr (sizeof...(Callbacks) > 0) {
      TrainProgress p;
      p.step = k;
      p.num_steps = num_steps;
      p.loss = losses.back();
      p.steps_done = trainer.steps_done();
      p.skipped = trainer.skipped_steps() != skipped_before;
      p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!call_callbacks(p, callbacks...)) break;
    }
  }
  return losses;
}

template <class Model, class S>
concept FusedLoss = requires(Model& m, TrainingBatch<S>& b, typename Model::Workspace& ws) {
  m.mse_loss_and_gradient(b.x, b.t, b.u, ws);
};
template <class Model, class S>
concept FusedConditionalLoss = requires(Model& m, TrainingBatch<S>& b, typename Model::Workspace& ws) {
  m.mse_loss_and_gradient(b.x, b.t, b.condition, b.u, ws);
};

}  // namespace detail

/// Conditional flow matching (Lipman et al., 2023): each step draws a fresh batch
/// (z ~ p_data, t ~ U[0, 1), x ~ p_t(. | z)), and takes one optimizer step on
///   L(theta) = mean over the batch and the d coordinates of (u_theta(x, t) - u_t(x | z))^2,
/// the reference implementation's `torch.mean((u_theta - u_ref) ** 2)`. The same seed gives the
/// same run.
///
/// One trainer for unconditional and conditional models. With a conditional model (a
/// TrainableConditionalField: ConditionalVectorField for class labels or context vectors) the
/// path's batches carry each sample's condition (batch.condition, filled by the path from
/// conditional data, e.g. a GaussianConditionalPath over labelled toy data or an Empirical with a
/// context matrix); the trainer drops each one with probability options().condition_dropout
/// (drawn from its generator after the batch) and hands the batch's condition to the model:
///   L(theta) = mean (u_theta(x, t | c) - u_t(x | z))^2.
/// A condition of another kind than the model's, or none, throws InvalidArgument.
///
/// The trainer holds a copy of the path and references to the model and the optimizer, which
/// must outlive it. All buffers are sized on the first step of a batch size; later steps allocate
/// nothing (guards, clipping and condition dropout included).
///
/// Guards (TrainerOptions): every step checks its loss, and optionally the gradient's norm, before
/// the update; a non-finite value throws NumericalError naming the step (the model and optimizer
/// are left as after the last good step) or, by policy, skips the batch. Optional clipping of the
/// gradient by its global norm.
///
/// State: state_parts() lists the model ("model"), the optimizer ("optimizer") and the trainer's
/// own counters and generator ("trainer", TrainerCounters): saving and loading those three resumes
/// a run exactly.
template <ConditionalPath Path, class Model, Optimizer Opt>
  requires TrainableVectorField<Model> || TrainableConditionalField<Model>
class CFMTrainer {
 public:
  using Scalar = typename Model::Scalar;
  static_assert(std::same_as<Scalar, typename Opt::Scalar>,
                "flowmatch::CFMTrainer: the optimizer's scalar type must be the model's scalar type "
                "(for example MLPVectorField<float> with Adam<float>).");
  /// Whether the model takes a condition (a TrainableConditionalField).
  static constexpr bool kConditional = TrainableConditionalField<Model>;
  /// Whether the model has the fused mse_loss_and_gradient (else forward_train, then backward).
  static constexpr bool kFused =
      kConditional ? detail::FusedConditionalLoss<Model, Scalar> : detail::FusedLoss<Model, Scalar>;

  CFMTrainer(Path path, Model& model, Opt& optimizer, std::uint64_t seed = 0, TrainerOptions options = {})
      : path_(std::move(path)), model_(model), optimizer_(optimizer) {
    constexpr const char* where = "flowmatch::CFMTrainer::CFMTrainer";
    counters_.rng.seed(seed);
    if constexpr (requires(const Path& p) { p.time_density(); })
      counters_.time_density = detail::describe_time_density(path_.time_density());
    if (static_cast<Index>(path_.dim()) != static_cast<Index>(model_.dim()))
      detail::throw_dimension(where, "model", "dimension", static_cast<long long>(model_.dim()),
                              static_cast<long long>(path_.dim()));
    if constexpr (kConditional) check_data_condition(where);
    set_options(options);
  }

  const TrainerOptions& options() const { return options_; }
  void set_options(const TrainerOptions& options) {
    constexpr const char* where = "flowmatch::CFMTrainer::set_options";
    if (!(options.max_grad_norm >= 0.0 && std::isfinite(options.max_grad_norm)))
      detail::throw_invalid(where, "max_grad_norm", options.max_grad_norm, "must be finite and >= 0 (0: no clipping)");
    if (options.max_consecutive_skips < 1)
      detail::throw_invalid(where, "max_consecutive_skips", options.max_consecutive_skips, "must be at least 1");
    if (!(options.condition_dropout >= 0.0 && options.condition_dropout < 1.0))
      detail::throw_invalid(where, "condition_dropout", options.condition_dropout, "must lie in [0, 1)");
    if (!kConditional && options.condition_dropout != 0.0)
      detail::throw_invalid(where, "condition_dropout", options.condition_dropout,
                            "needs a conditional model (this one takes no condition)");
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
    return apply_update(loss_and_gradient(batch_size, counters_.rng));
  }

  /// The first half of step(): draws a batch of `batch_size` samples from `rng` (condition
  /// dropout included), and computes its loss and the loss's gradient into model().gradients().
  /// Returns the loss; a non-finite loss is returned as it is (the gradient is then undefined) and
  /// nothing else changes: apply_update() decides. For data-parallel training
  /// (flowmatch::distributed::DataParallelTrainer), which draws each shard from its own stream and
  /// averages the gradients over the processes between the two halves.
  double loss_and_gradient(Index batch_size, Rng& rng) {
    if (batch_size <= 0)
      detail::throw_invalid("flowmatch::CFMTrainer::loss_and_gradient", "batch_size", batch_size,
                            "must be at least 1");
    batch_.resize(path_.dim(), batch_size);
    path_.sample_training_batch(rng, batch_);
    if constexpr (kConditional) prepare_condition(rng);
    if (batch_.weight.size() == batch_size) return weighted_loss();
    if constexpr (kFused) {
      // One fused pass (forward and backward block by block); the parameters are untouched until
      // the optimizer step.
      return fused_loss();
    } else {
      if (grad_out_.cols() != batch_size || grad_out_.rows() != path_.dim()) grad_out_.resize(path_.dim(), batch_size);
      grad_out_.noalias() = forward_train() - batch_.u;
      const double count = static_cast<double>(grad_out_.size());
      const double loss = static_cast<double>(grad_out_.squaredNorm()) / count;
      if (!std::isfinite(loss)) return loss;
      grad_out_ *= static_cast<Scalar>(2.0 / count);
      model_.backward(grad_out_, ws_);
      return loss;
    }
  }

  /// The second half of step(): given the step's loss and the gradient in model().gradients(),
  /// applies the guards (a non-finite loss or gradient norm: throw or skip, see step()), clipping
  /// and the optimizer step, and counts the step. Returns the loss (NaN for a skipped batch).
  double apply_update(double loss) {
    if (!std::isfinite(loss)) return reject("loss", loss);
    if (options_.check_gradient || options_.max_grad_norm > 0.0) {
      // In double: a float sum of squares overflows long before the gradient itself does.
      const double norm = std::sqrt(model_.gradients().template cast<double>().squaredNorm());
      last_gradient_norm_ = norm;
      if (!std::isfinite(norm)) return reject("gradient norm", norm);
      if (options_.max_grad_norm > 0.0 && norm > options_.max_grad_norm) {
        model_.gradients() *= static_cast<Scalar>(options_.max_grad_norm / norm);
        ++counters_.clipped_steps;
      }
    }
    optimizer_.step(model_.parameters(), model_.gradients());
    ++counters_.steps_done;
    counters_.consecutive_skips = 0;
    return loss;
  }

  /// Runs `num_steps` steps at `batch_size` and returns their losses. After each step it calls
  /// every callback `callback(const TrainProgress&)`, in order; training stops after the step if
  /// any callback that returns bool returned false.
  template <class... Callbacks>
  std::vector<double> train(long long num_steps, Index batch_size, Callbacks&&... callbacks) {
    return detail::train_loop(*this, "flowmatch::CFMTrainer::train", num_steps, batch_size, callbacks...);
  }

  /// The parts a checkpoint saves: the model, the optimizer and the trainer's counters.
  auto state_parts() {
    return std::make_tuple(state_part("model", model_), state_part("optimizer", optimizer_),
                           state_part("trainer", counters_));
  }

  const Path& path() const { return path_; }
  Model& model() { return model_; }
  const Model& model() const { return model_; }
  Opt& optimizer() { return optimizer_; }
  const Opt& optimizer() const { return optimizer_; }
  /// The generator that draws every batch (and the condition dropout).
  Rng& rng() { return counters_.rng; }
  const Rng& rng() const { return counters_.rng; }
  /// The step counts and the generator (the "trainer" part of state_parts()).
  TrainerCounters& counters() { return counters_; }
  const TrainerCounters& counters() const { return counters_; }
  /// Steps taken by this trainer over its lifetime (skipped batches included; a step that threw is
  /// not counted).
  long long steps_done() const { return counters_.steps_done; }
  /// Sets the step count (checkpoints restore it; it numbers the steps in error messages).
  void set_steps_done(long long steps) {
    if (steps < 0) detail::throw_invalid("flowmatch::CFMTrainer::set_steps_done", "steps", steps, "must be >= 0");
    counters_.steps_done = steps;
  }
  /// Batches skipped under NonFinitePolicy::SkipBatch, over the trainer's lifetime.
  long long skipped_steps() const { return counters_.skipped_steps; }
  /// Steps whose gradient was scaled down by clipping.
  long long clipped_steps() const { return counters_.clipped_steps; }
  /// The gradient norm of the last step that computed it (check_gradient or clipping), before clipping.
  double last_gradient_norm() const { return last_gradient_norm_; }
  /// The batch of the last step (z, t, x, the target u, and the condition after dropout).
  const TrainingBatch<Scalar>& last_batch() const { return batch_; }

 private:
  Path path_;
  Model& model_;
  Opt& optimizer_;
  TrainerCounters counters_;
  TrainingBatch<Scalar> batch_;
  typename Model::Workspace ws_;
  Matrix<Scalar> grad_out_;
  double last_gradient_norm_ = 0.0;
  TrainerOptions options_;

  // The loss with per-sample weights w_j (a WeightedTime density): sum_j w_j |r_j|^2 / (n d) for
  // the residual r = u_theta - u, by forward_train and backward (the fused pass has no weights).
  double weighted_loss() {
    const Index n = batch_.size(), d = path_.dim();
    if (grad_out_.cols() != n || grad_out_.rows() != d) grad_out_.resize(d, n);
    grad_out_.noalias() = forward_train() - batch_.u;
    const double count = static_cast<double>(grad_out_.size());
    double loss = 0.0;
    for (Index j = 0; j < n; ++j) {
      const double w = static_cast<double>(batch_.weight(j));
      loss += w * static_cast<double>(grad_out_.col(j).squaredNorm());
      grad_out_.col(j) *= static_cast<Scalar>(2.0 * w / count);
    }
    loss /= count;
    if (!std::isfinite(loss)) return loss;
    model_.backward(grad_out_, ws_);
    return loss;
  }

  // The model's loss pass on the batch, with the condition for a conditional model.
  double fused_loss()
  {
    if constexpr (kConditional) return model_.mse_loss_and_gradient(batch_.x, batch_.t, batch_.condition, batch_.u, ws_);
    else return model_.mse_loss_and_gradient(batch_.x, batch_.t, batch_.u, ws_);
  }
  const Matrix<Scalar>& forward_train() {
    if constexpr (kConditional) return model_.forward_train(batch_.x, batch_.t, batch_.condition, ws_);
    else return model_.forward_train(batch_.x, batch_.t, ws_);
  }

  // The batch's condition must be the model's kind; then condition dropout.
  void prepare_condition(Rng& rng) {
    ConditionBatch<Scalar>& c = batch_.condition;
    if (c.kind != model_.condition_kind())
      detail::throw_invalid("flowmatch::CFMTrainer::step", "batch.condition.kind",
                            std::string(condition_kind_name(c.kind)),
                            "the model takes a condition of kind '" +
                                std::string(condition_kind_name(model_.condition_kind())) +
                                "': train it on conditional data of that kind (with the independent coupling)");
    if (options_.condition_dropout > 0.0)
      for (Index j = 0; j < c.present.size(); ++j)
        if (rng.uniform() < options_.condition_dropout) c.present(j) = Scalar(0);
  }

  // At construction, where the path says what its data are: the data's condition must be the
  // model's (kind, number of classes, context dimension).
  void check_data_condition(const char* where) const {
    if constexpr (requires(const Path& p) { p.p_data(); }) {
      using Data = std::remove_cvref_t<decltype(path_.p_data())>;
      const ConditionKind want = model_.condition_kind();
      if constexpr (ConditionalDistribution<Data>) {
        const auto& data = path_.p_data();
        if constexpr (requires { Path::carries_conditions(); })
          if (!Path::carries_conditions())
            detail::throw_invalid(where, "model", std::string(condition_kind_name(want)),
                                  "takes a condition, but the path's batches carry none (its coupling pairs "
                                  "across conditions: conditional data need the independent coupling)");
        if (data.condition_kind() != want)
          detail::throw_invalid(where, "model", std::string(condition_kind_name(want)),
                                "takes a condition of that kind, the path's data have '" +
                                    std::string(condition_kind_name(data.condition_kind())) + "'");
        if constexpr (requires { data.num_classes(); model_.num_classes(); })
          if (want == ConditionKind::Label && static_cast<long long>(data.num_classes()) != model_.num_classes())
            detail::throw_dimension(where, "model", "number of classes", static_cast<long long>(model_.num_classes()),
                                    static_cast<long long>(data.num_classes()));
        if constexpr (requires { data.condition_dim(); model_.condition_dim(); })
          if (want == ConditionKind::Vector &&
              static_cast<long long>(data.condition_dim()) != static_cast<long long>(model_.condition_dim()))
            detail::throw_dimension(where, "model", "condition dimension",
                                    static_cast<long long>(model_.condition_dim()),
                                    static_cast<long long>(data.condition_dim()));
      } else {
        detail::throw_invalid(where, "model", std::string(condition_kind_name(want)),
                              "takes a condition, but the path's data distribution has none");
      }
    }
  }

  // A non-finite `what` at the step being taken: throw, or skip the batch (see step()).
  double reject(const char* what, double value) {
    const long long step = counters_.steps_done + 1;
    if (options_.on_non_finite == NonFinitePolicy::SkipBatch) {
      if (counters_.consecutive_skips + 1 > options_.max_consecutive_skips)
        throw NumericalError("flowmatch::CFMTrainer::step: the " + std::string(what) + " is " +
                             detail::to_string_value(value) + " at step " + std::to_string(step) + ", the " +
                             std::to_string(counters_.consecutive_skips + 1) +
                             "th non-finite batch in a row (max_consecutive_skips = " +
                             std::to_string(options_.max_consecutive_skips) +
                             "); the model and optimizer are left at the last good step");
      ++counters_.consecutive_skips;
      ++counters_.skipped_steps;
      ++counters_.steps_done;
      return std::numeric_limits<double>::quiet_NaN();
    }
    throw NumericalError("flowmatch::CFMTrainer::step: the " + std::string(what) + " is " +
                         detail::to_string_value(value) + " at step " + std::to_string(step) +
                         "; the model and optimizer are left at the previous step");
  }
};

}  // namespace flowmatch
