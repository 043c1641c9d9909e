#pragma once
/// \file
/// MeanFlowTrainer: trains a MeanFlowField with the MeanFlow identity (Geng et al. 2025) on the
/// straight path x_t = t x1 + (1 - t) x0 between a source and the data, so that one network
/// evaluation, x1 = x0 + U(x0, 0, 1), samples the data.
///
/// Each step draws x1 ~ data and x0 ~ source (paired by a coupling: independent, or minibatch
/// OT), and per sample two times from the time density (default logit-normal(0.4, 1), the paper's
/// (-0.4, 1) mirrored to our direction); t is the smaller, r the larger, and with probability
/// 1 - options.interval_fraction r is set to t (plain flow matching on those samples: the paper's
/// best setting keeps r != t for 25%). With v = x1 - x0 (the conditional velocity) the target is
///   U_tgt = v + (r - t) d/dt U_theta(x_t, t, r),   d/dt U = (dU/dx) v + dU/dt,
/// evaluated with the current parameters and held fixed (a stop-gradient): the loss is
///   L = mean_j w_j |U_theta(x_t, t, r)_j - U_tgt,j|^2,   w_j = sg(1 / (|Delta_j|^2 + c)^p)
/// (the paper's adaptive weighting; p = 0 is the plain squared error). The derivative is one
/// forward-mode pass through the layers the forward pass kept (MeanFlowField::time_derivative),
/// written by hand: no autodiff.
///
/// step() returns the plain mean squared error mean_j |Delta_j|^2 / d (comparable across p);
/// last_weighted_loss() is the weighted one that is minimised. A non-finite loss throws
/// NumericalError naming the step and leaves the model as it was.
///
/// State: state_parts() lists "model", "optimizer" and "trainer" (TrainerCounters: step counts,
/// the generator and the time density), as CFMTrainer's: a checkpoint resumes a run exactly.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/coupling/concepts.hpp"
#include "flowmatch/coupling/independent.hpp"
#include "flowmatch/distribution/concepts.hpp"
#include "flowmatch/distribution/standard_normal.hpp"
#include "flowmatch/nn/mean_flow_field.hpp"
#include "flowmatch/optim/concepts.hpp"
#include "flowmatch/path/time_density.hpp"
#include "flowmatch/train/cfm_trainer.hpp"

namespace flowmatch {

/// Settings of a MeanFlowTrainer.
struct MeanFlowOptions {
  /// Fraction of samples with r != t, in [0, 1] (the rest train U(x, t, t) = v: flow matching).
  double interval_fraction = 0.25;
  /// Adaptive loss weight power p >= 0 (w = 1 / (|Delta|^2 + c)^p; 0: plain squared error).
  /// The paper's p = 1 (its images) down-weights the samples with large residuals, which turns the
  /// regression towards a median: on N -> moons (SELU 64x3, 20000 steps, seed 42) one-step W2
  /// 0.364 at p = 0 against 0.453 at p = 1 (examples/otcfm_table --methods meanflow
  /// --meanflow-power p). Default: 0.
  double adaptive_power = 0.0;
  /// Its c > 0.
  double adaptive_epsilon = 1e-3;
};

template <SampleableDistribution Data, class Model, Optimizer Opt, SampleableDistribution Source = StandardNormal,
          Coupling Coup = IndependentCoupling, TimeDensity Time = LogitNormalTime>
class MeanFlowTrainer {
 public:
  using Scalar = typename Model::Scalar;
  static_assert(std::same_as<Scalar, typename Opt::Scalar>,
                "flowmatch::MeanFlowTrainer: the optimizer's scalar type must be the model's scalar type");
  static_assert(requires(Model& m, typename Model::Workspace& ws, const Matrix<Scalar>& x, const RowVector<Scalar>& t,
                         Matrix<Scalar>& out) {
    m.forward_train(x, t, t, ws);
    m.time_derivative(x, out, ws);
    m.backward(x, ws);
  }, "flowmatch::MeanFlowTrainer: the model must be a MeanFlowField (or have its forward_train(x, t, r, ws), "
     "time_derivative(v, out, ws) and backward(grad, ws))");

  /// A trainer from the source (default N(0, I) of the data's dimension) to `data`. The model and
  /// the optimizer must outlive it. Throws InvalidArgument for options out of range and
  /// DimensionMismatch for a model or source of another dimension than the data.
  MeanFlowTrainer(Data data, Model& model, Opt& optimizer, std::uint64_t seed = 0, MeanFlowOptions options = {},
                  Time time = default_time(), Coup coupling = Coup{})
    requires std::constructible_from<Source, Index>
      : MeanFlowTrainer(data, model, optimizer, seed, options, std::move(time), std::move(coupling),
                        Source(static_cast<Index>(data.dim()))) {}

  /// The same with an explicit source distribution.
  MeanFlowTrainer(Data data, Model& model, Opt& optimizer, std::uint64_t seed, MeanFlowOptions options, Time time,
                  Coup coupling, Source source)
      : data_(std::move(data)),
        source_(std::move(source)),
        coupling_(std::move(coupling)),
        time_(std::move(time)),
        model_(model),
        optimizer_(optimizer),
        options_(options) {
    constexpr const char* where = "flowmatch::MeanFlowTrainer::MeanFlowTrainer";
    counters_.rng.seed(seed);
    counters_.time_density = detail::describe_time_density(time_);
    if (!(options.interval_fraction >= 0.0 && options.interval_fraction <= 1.0))
      detail::throw_invalid(where, "options.interval_fraction", options.interval_fraction, "must lie in [0, 1]");
    if (!(options.adaptive_power >= 0.0 && std::isfinite(options.adaptive_power)))
      detail::throw_invalid(where, "options.adaptive_power", options.adaptive_power, "must be finite and >= 0");
    if (!(options.adaptive_epsilon > 0.0 && std::isfinite(options.adaptive_epsilon)))
      detail::throw_invalid(where, "options.adaptive_epsilon", options.adaptive_epsilon, "must be finite and > 0");
    if (static_cast<Index>(model_.dim()) != static_cast<Index>(data_.dim()))
      detail::throw_dimension(where, "model", "dimension", static_cast<long long>(model_.dim()),
                              static_cast<long long>(data_.dim()));
    if (static_cast<Index>(source_.dim()) != static_cast<Index>(data_.dim()))
      detail::throw_dimension(where, "source", "dimension", static_cast<long long>(source_.dim()),
                              static_cast<long long>(data_.dim()));
  }

  /// The default time density: logit-normal(0.4, 1) for LogitNormalTime, else Time{}.
  static Time default_time() {
    if constexpr (std::same_as<Time, LogitNormalTime>) return LogitNormalTime(0.4, 1.0);
    else return Time{};
  }

  /// One step on a fresh batch of `batch_size` pairs; returns the plain MSE mean |Delta|^2 / d.
  double step(Index batch_size) {
    constexpr const char* where = "flowmatch::MeanFlowTrainer::step";
    if (batch_size <= 0) detail::throw_invalid(where, "batch_size", batch_size, "must be at least 1");
    const Index d = data_.dim(), n = batch_size;
    if (x1_.cols() != n) {
      for (Matrix<Scalar>* m : {&x1_, &x0_, &x_, &v_, &du_, &grad_}) m->resize(d, n);
      t_.resize(n);
      r_.resize(n);
    }
    Rng& rng = counters_.rng;
    data_.sample(rng, x1_);
    source_.sample(rng, x0_);
    coupling_.pair(rng, x0_, x1_);
    for (Index j = 0; j < n; ++j) {
      double a = time_.sample(rng), b = time_.sample(rng);
      if (a > b) std::swap(a, b);
      if (!(rng.uniform() < options_.interval_fraction)) b = a;
      t_(j) = static_cast<Scalar>(a);
      r_(j) = static_cast<Scalar>(b);
    }
    for (Index j = 0; j < n; ++j) {
      v_.col(j) = x1_.col(j) - x0_.col(j);          // v = x1 - x0
      x_.col(j) = x0_.col(j) + t_(j) * v_.col(j);   // x_t = x0 + t v
    }
    const Matrix<Scalar>& u = model_.forward_train(x_, t_, r_, ws_);
    model_.time_derivative(v_, du_, ws_);
    // Delta = U - (v + (r - t) dU/dt), into grad_; then the weights and the gradient 2 w Delta / n.
    double mse = 0.0, weighted = 0.0;
    for (Index j = 0; j < n; ++j) {
      const Scalar h = r_(j) - t_(j);
      grad_.col(j) = u.col(j) - v_.col(j) - h * du_.col(j);
      const double sq = static_cast<double>(grad_.col(j).squaredNorm());
      const double w = options_.adaptive_power == 0.0
                           ? 1.0
                           : std::pow(sq + options_.adaptive_epsilon, -options_.adaptive_power);
      mse += sq;
      weighted += w * sq;
      grad_.col(j) *= static_cast<Scalar>(2.0 * w / static_cast<double>(n));
    }
    mse /= static_cast<double>(n * d);
    weighted /= static_cast<double>(n);
    last_weighted_loss_ = weighted;
    if (!std::isfinite(mse) || !std::isfinite(weighted))
      throw NumericalError(std::string(where) + ": the loss is " + detail::to_string_value(mse) + " at step " +
                           std::to_string(counters_.steps_done + 1) + "; the model and optimizer are left at the "
                           "previous step");
    model_.backward(grad_, ws_);
    optimizer_.step(model_.parameters(), model_.gradients());
    ++counters_.steps_done;
    return mse;
  }

  /// `num_steps` steps at `batch_size`, with callbacks as CFMTrainer::train; returns the losses.
  template <class... Callbacks>
  std::vector<double> train(long long num_steps, Index batch_size, Callbacks&&... callbacks) {
    return detail::train_loop(*this, "flowmatch::MeanFlowTrainer::train", num_steps, batch_size, callbacks...);
  }

  auto state_parts() {
    return std::make_tuple(state_part("model", model_), state_part("optimizer", optimizer_),
                           state_part("trainer", counters_));
  }

  Model& model() { return model_; }
  Opt& optimizer() { return optimizer_; }
  Rng& rng() { return counters_.rng; }
  TrainerCounters& counters() { return counters_; }
  const MeanFlowOptions& options() const { return options_; }
  long long steps_done() const { return counters_.steps_done; }
  long long skipped_steps() const { return 0; }
  double last_weighted_loss() const { return last_weighted_loss_; }
  /// The batch of the last step: points x_t, times t and r, velocities v = x1 - x0.
  const Matrix<Scalar>& last_x() const { return x_; }
  const RowVector<Scalar>& last_t() const { return t_; }
  const RowVector<Scalar>& last_r() const { return r_; }
  const Matrix<Scalar>& last_v() const { return v_; }

 private:
  Data data_;
  Source source_;
  Coup coupling_;
  Time time_;
  Model& model_;
  Opt& optimizer_;
  MeanFlowOptions options_;
  TrainerCounters counters_;
  typename Model::Workspace ws_;
  Matrix<Scalar> x1_, x0_, x_, v_, du_, grad_;
  RowVector<Scalar> t_, r_;
  double last_weighted_loss_ = 0.0;
};

}  // namespace flowmatch
