#pragma once
/// \file
/// Flow matching posterior estimation (FMPE: Wildberger, Dax et al., NeurIPS 2023): a flow over
/// the parameters theta conditioned on the data x, trained on simulated pairs (theta, x), then
/// sampled at an observation x_o to draw from the posterior p(theta | x_o).
///
/// What FMPE found to matter, and what this class does about it:
/// - the training times are skewed toward the data end (PowerTime, their "time prior exponent");
/// - theta and x are z-scored with the training split's mean and standard deviation, and the
///   normalisation is part of the model (state, sampling);
/// - training stops early on a held-out split (the CFM loss on fixed (t, noise) draws), and the
///   parameters of the best validation epoch are kept;
/// - sampling many theta for one x_o is one batch with the observation shared by every column
///   (ConditionBatch::set_shared_context: no copies of x_o), integrated with a fixed-step solver;
/// - samples outside the prior's support can be rejected (sbibm's practice for NPE), counted and
///   redrawn (sample_in_support).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/coupling/independent.hpp"
#include "flowmatch/distribution/empirical.hpp"
#include "flowmatch/distribution/standard_normal.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/conditional_field.hpp"
#include "flowmatch/ode/classifier_free_guidance.hpp"
#include "flowmatch/ode/explicit_steppers.hpp"
#include "flowmatch/ode/simulator.hpp"
#include "flowmatch/optim/adam.hpp"
#include "flowmatch/path/gaussian_conditional_path.hpp"
#include "flowmatch/path/time_density.hpp"
#include "flowmatch/schedule/linear_alpha.hpp"
#include "flowmatch/schedule/lipman_ot_beta.hpp"
#include "flowmatch/train/cfm_trainer.hpp"

namespace flowmatch::sbi {

/// Settings of a FlowPosterior: the network, the path, training and sampling.
struct PosteriorOptions {
  std::vector<Index> hidden = {256, 256, 256, 256};  ///< hidden widths of the MLP
  Index num_frequencies = 3;     ///< Fourier features of t (ConditionalVectorField)
  double time_exponent = 4.0;    ///< PowerTime's a: p(t) = w + (1 - w)(1 + a) t^a
  double time_uniform_weight = 0.3;  ///< PowerTime's w (0: the power law alone)
  /// Exponential moving average of the parameters (0: none): the validation loss, early stopping
  /// and the kept parameters use the average, which is less noisy than the last step's.
  double ema_decay = 0.999;
  double sigma_min = 1e-4;       ///< the OT path's width at the data: x_t = t theta + (1 - (1 - s) t) eps
  Index batch_size = 256;
  double learning_rate = 1e-3;   ///< Adam's
  /// The learning rate is halved after this many epochs without a better validation loss
  /// (0: never); training stops after `patience` such epochs.
  long long lr_patience = 10;
  double validation_fraction = 0.1;  ///< held out of the simulations for early stopping
  Index validation_draws = 8;        ///< (t, noise) draws per held-out pair (capped at 32768 in all)
  long long max_epochs = 2000;       ///< an epoch: ceil(training pairs / batch_size) steps
  long long patience = 25;           ///< epochs without a better validation loss before stopping
  double max_seconds = 0.0;          ///< a wall-time budget for training (0: none)
  Index ode_steps = 16;              ///< RK4 steps from t = 0 to 1 when sampling
  std::uint64_t seed = 0;            ///< initialisation, the split, batches
};

/// What fit() did.
struct FitReport {
  long long epochs = 0;            ///< epochs run
  long long steps = 0;             ///< optimizer steps
  long long best_epoch = 0;        ///< the epoch whose parameters were kept (1-based)
  double best_validation_loss = 0; ///< its validation loss
  double seconds = 0;              ///< wall time of fit()
  bool stopped_early = false;      ///< stopped by patience (not by max_epochs or max_seconds)
  Index train_size = 0, validation_size = 0;
};

/// What one epoch reports to fit()'s callback.
struct EpochProgress {
  long long epoch = 0;
  double train_loss = 0;       ///< mean training loss of the epoch
  double validation_loss = 0;
  double learning_rate = 0;
  double seconds = 0;          ///< since fit() started
};

/// What sample_in_support() drew.
struct SupportReport {
  long long accepted = 0;  ///< the samples returned
  long long rejected = 0;  ///< samples drawn outside the support (and redrawn)
  long long rounds = 0;    ///< batches drawn
};

/// A posterior estimator q(theta | x): a ConditionalVectorField over the z-scored theta (dimension
/// d) with the z-scored x (dimension m) as its context vector, trained by conditional flow matching
/// on the OT path (LinearAlpha, LipmanOTBeta(sigma_min)) with PowerTime training times, Adam and
/// early stopping. S is the network's scalar (float: the fast one); data and samples are double.
///
/// State (Stateful, scope "posterior"): type "flow_posterior", theta_dim, x_dim, the normalisation
/// (theta_mean, theta_std, x_mean, x_std, float64 vectors) and the field under "field": a saved
/// posterior samples exactly as the one that was saved.
template <Real S = float, Activation Act = SiLU>
class FlowPosterior {
 public:
  using Scalar = S;
  using Field = ConditionalVectorField<S, Act>;
  static constexpr std::string_view state_scope = "posterior";

  /// theta_dim, x_dim >= 1; options checked (InvalidArgument naming the setting otherwise).
  FlowPosterior(Index theta_dim, Index x_dim, PosteriorOptions options = {})
      : options_(checked(std::move(options))),
        field_(checked_dim("theta_dim", theta_dim), ConditionKind::Vector, checked_dim("x_dim", x_dim),
               options_.hidden, options_.seed, options_.num_frequencies),
        theta_mean_(Vector<double>::Zero(theta_dim)),
        theta_std_(Vector<double>::Ones(theta_dim)),
        x_mean_(Vector<double>::Zero(x_dim)),
        x_std_(Vector<double>::Ones(x_dim)) {}

  Index theta_dim() const { return static_cast<Index>(field_.dim()); }
  Index x_dim() const { return field_.condition_dim(); }
  const PosteriorOptions& options() const { return options_; }
  const Field& field() const { return field_; }
  Field& field() { return field_; }
  bool trained() const { return trained_; }
  const Vector<double>& theta_mean() const { return theta_mean_; }
  const Vector<double>& theta_std() const { return theta_std_; }
  const Vector<double>& x_mean() const { return x_mean_; }
  const Vector<double>& x_std() const { return x_std_; }

  /// Trains on the simulated pairs: column j of theta (d x N) made column j of x (m x N). A
  /// validation_fraction of the pairs (at least 1, drawn at random) is held out; the rest sets
  /// the normalisation and trains the flow, one epoch at a time, until the validation loss has
  /// not improved for `patience` epochs (or max_epochs, or max_seconds). The parameters of the
  /// best epoch are kept. `on_epoch(const EpochProgress&)` is called after each epoch (optional).
  /// Throws DimensionMismatch for shapes, InvalidArgument for fewer than 2 pairs or non-finite
  /// values (naming the column), NumericalError if the loss is not finite.
  template <class DT, class DX, class OnEpoch = void (*)(const EpochProgress&)>
  FitReport fit(const Eigen::MatrixBase<DT>& theta, const Eigen::MatrixBase<DX>& x, OnEpoch on_epoch = nullptr) {
    constexpr const char* where = "flowmatch::sbi::FlowPosterior::fit";
    const auto start = std::chrono::steady_clock::now();
    const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    flowmatch::detail::require_rows(where, "theta", theta.rows(), theta_dim());
    flowmatch::detail::require_rows(where, "x", x.rows(), x_dim());
    if (x.cols() != theta.cols()) flowmatch::detail::throw_dimension(where, "x", "columns (one per theta)", x.cols(), theta.cols());
    const Index n = theta.cols();
    if (n < 2) flowmatch::detail::throw_invalid(where, "theta.cols()", static_cast<long long>(n), "needs at least 2 simulations");
    check_finite(where, "theta", theta);
    check_finite(where, "x", x);

    // The split: a random permutation; the first n_val columns are held out.
    Rng rng(options_.seed ^ 0x9e3779b97f4a7c15ULL);
    std::vector<Index> order(static_cast<std::size_t>(n));
    for (Index j = 0; j < n; ++j) order[static_cast<std::size_t>(j)] = j;
    for (Index j = n - 1; j > 0; --j)
      std::swap(order[static_cast<std::size_t>(j)], order[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(j + 1)))]);
    const Index n_val = std::clamp<Index>(static_cast<Index>(std::llround(options_.validation_fraction * static_cast<double>(n))),
                                          1, n - 1);
    const Index n_train = n - n_val;
    Matrix<double> theta_train(theta_dim(), n_train), x_train(x_dim(), n_train);
    Matrix<double> theta_val(theta_dim(), n_val), x_val(x_dim(), n_val);
    for (Index j = 0; j < n; ++j) {
      const Index src = order[static_cast<std::size_t>(j)];
      if (j < n_val) {
        theta_val.col(j) = theta.col(src).template cast<double>();
        x_val.col(j) = x.col(src).template cast<double>();
      } else {
        theta_train.col(j - n_val) = theta.col(src).template cast<double>();
        x_train.col(j - n_val) = x.col(src).template cast<double>();
      }
    }
    set_normalisation(theta_train, x_train);
    normalise_theta(theta_train);
    normalise_x(x_train);
    normalise_theta(theta_val);
    normalise_x(x_val);

    // The validation batch: fixed (t, noise) draws for every held-out pair.
    const Index draws = std::max<Index>(1, std::min<Index>(options_.validation_draws, 32768 / n_val));
    TrainingBatch<S> val(theta_dim(), n_val * draws);
    val.condition.set_context(x_dim(), n_val * draws);
    const PowerTime time(options_.time_exponent, options_.time_uniform_weight);
    const LipmanOTBeta beta(options_.sigma_min);
    const LinearAlpha alpha;
    for (Index k = 0; k < draws; ++k)
      for (Index j = 0; j < n_val; ++j) {
        const Index c = k * n_val + j;
        const double t = time.sample(rng);
        const double a = alpha.value(t), b = beta.value(t), da = alpha.derivative(t), db = beta.derivative(t);
        val.t(c) = static_cast<S>(t);
        for (Index i = 0; i < theta_dim(); ++i) {
          const double e = rng.normal();
          val.x(i, c) = static_cast<S>(a * theta_val(i, j) + b * e);
          val.u(i, c) = static_cast<S>(da * theta_val(i, j) + db * e);
        }
        val.condition.context.col(c) = x_val.col(j).template cast<S>();
      }

    using Path = GaussianConditionalPath<LinearAlpha, LipmanOTBeta, Empirical, StandardNormal, IndependentCoupling,
                                         PowerTime>;
    Path path(Empirical::with_context(std::move(theta_train), std::move(x_train)), alpha, beta,
              StandardNormal(theta_dim()), IndependentCoupling{}, time);
    Adam<S> adam(options_.learning_rate);
    CFMTrainer<Path, Field, Adam<S>> trainer(std::move(path), field_, adam, options_.seed + 1);
    const Index batch = std::min<Index>(options_.batch_size, n_train);
    const long long steps_per_epoch = (n_train + batch - 1) / batch;

    FitReport report;
    report.train_size = n_train;
    report.validation_size = n_val;
    Vector<S> best = field_.parameters();
    const bool use_ema = options_.ema_decay > 0.0;
    Vector<S> ema = field_.parameters(), current;
    const S decay = static_cast<S>(options_.ema_decay);
    double best_loss = std::numeric_limits<double>::infinity();
    long long since_best = 0, since_lr = 0;
    double lr = options_.learning_rate;
    typename Field::Workspace ws;
    Matrix<S> out(theta_dim(), val.size());
    for (long long epoch = 1; epoch <= options_.max_epochs; ++epoch) {
      double sum = 0.0;
      for (long long s = 0; s < steps_per_epoch; ++s) {
        sum += trainer.step(batch);
        if (use_ema) ema = decay * ema + (S(1) - decay) * field_.parameters();
      }
      report.steps += steps_per_epoch;
      report.epochs = epoch;
      if (use_ema) {  // validate the average: swap it in for the forward pass
        current = field_.parameters();
        field_.parameters() = ema;
      }
      field_.forward(val.x, val.t, val.condition, out, ws);
      if (use_ema) field_.parameters() = current;
      const double vloss = static_cast<double>((out - val.u).squaredNorm()) / static_cast<double>(out.size());
      if (!std::isfinite(vloss))
        throw NumericalError(std::string(where) + ": the validation loss is " + flowmatch::detail::to_string_value(vloss) +
                             " after epoch " + std::to_string(epoch));
      if (vloss < best_loss) {
        best_loss = vloss;
        best = use_ema ? ema : field_.parameters();
        report.best_epoch = epoch;
        since_best = since_lr = 0;
      } else {
        ++since_best;
        ++since_lr;
        if (options_.lr_patience > 0 && since_lr >= options_.lr_patience) {
          lr *= 0.5;
          adam.set_learning_rate(lr);
          since_lr = 0;
        }
      }
      if constexpr (!std::is_pointer_v<OnEpoch>) {
        on_epoch(EpochProgress{epoch, sum / static_cast<double>(steps_per_epoch), vloss, lr, elapsed()});
      } else {
        if (on_epoch != nullptr) on_epoch(EpochProgress{epoch, sum / static_cast<double>(steps_per_epoch), vloss, lr, elapsed()});
      }
      if (since_best >= options_.patience) {
        report.stopped_early = true;
        break;
      }
      if (options_.max_seconds > 0.0 && elapsed() >= options_.max_seconds) break;
    }
    field_.parameters() = best;
    trained_ = true;
    report.best_validation_loss = best_loss;
    report.seconds = elapsed();
    return report;
  }

  /// Draws out.cols() samples of q(theta | x_o) into `out` (d x n, double): one batch from
  /// N(0, I), the observation z-scored once and shared by every column, RK4 with ode_steps steps,
  /// then the normalisation undone. Throws DimensionMismatch for shapes, InvalidArgument for a
  /// non-finite x_o.
  template <class DX, class DO>
  void sample(const Eigen::MatrixBase<DX>& x_o, Rng& rng, const Eigen::MatrixBase<DO>& out_) const {
    constexpr const char* where = "flowmatch::sbi::FlowPosterior::sample";
    auto& out = flowmatch::detail::writable(out_);
    check_observation(where, x_o);
    flowmatch::detail::require_rows(where, "out", out.rows(), theta_dim());
    const Index n = out.cols();
    if (n == 0) return;
    Matrix<S> state(theta_dim(), n);
    for (Index j = 0; j < n; ++j)
      for (Index i = 0; i < theta_dim(); ++i) state(i, j) = static_cast<S>(rng.normal());
    integrate(x_o, state);
    for (Index j = 0; j < n; ++j)
      out.col(j) = theta_mean_ + theta_std_.cwiseProduct(state.col(j).template cast<double>());
  }

  /// Like sample(), keeping only samples for which `in_support(theta)` is true (theta: a column
  /// of double, passed as a view; a predicate may take `Eigen::Ref<const Vector<double>>`, as
  /// Task::in_support does, or `const Vector<double>&`) and redrawing the others, in batches, until n are accepted: sbibm's rejection of
  /// samples outside the prior's support. Throws NumericalError, naming the counts, if fewer than
  /// one sample in `max_reject_ratio` + 1 is accepted after at least n draws (a posterior that
  /// has left the support).
  template <class DX, class InSupport>
  SupportReport sample_in_support(const Eigen::MatrixBase<DX>& x_o, Index n, Rng& rng, InSupport&& in_support,
                                  Matrix<double>& out, double max_reject_ratio = 100.0) const {
    constexpr const char* where = "flowmatch::sbi::FlowPosterior::sample_in_support";
    flowmatch::detail::require_positive_count(where, "n", n);
    out.resize(theta_dim(), n);
    SupportReport r;
    Matrix<double> draw;
    while (r.accepted < n) {
      const Index want = static_cast<Index>(n - r.accepted);
      // Ask for more than are missing, in proportion to the acceptance so far.
      const double rate = r.rounds == 0 ? 1.0 : std::max(1e-3, static_cast<double>(r.accepted) /
                                                                   static_cast<double>(r.accepted + r.rejected));
      const Index batch = std::min<Index>(std::max<Index>(want, static_cast<Index>(std::ceil(1.1 * want / rate)) + 16),
                                          std::max<Index>(n, 1) * 4);
      draw.resize(theta_dim(), batch);
      sample(x_o, rng, draw);
      ++r.rounds;
      for (Index j = 0; j < batch && r.accepted < n; ++j) {
        if (in_support(draw.col(j))) {  // a column view: a predicate taking a Vector gets a temporary
          out.col(static_cast<Index>(r.accepted)) = draw.col(j);
          ++r.accepted;
        } else {
          ++r.rejected;
        }
      }
      if (r.accepted < n && r.accepted + r.rejected >= n &&
          static_cast<double>(r.rejected) > max_reject_ratio * static_cast<double>(r.accepted + 1))
        throw NumericalError(std::string(where) + ": " + std::to_string(r.rejected) + " of " +
                             std::to_string(r.accepted + r.rejected) +
                             " samples fell outside the support (more than max_reject_ratio = " +
                             flowmatch::detail::to_string_value(max_reject_ratio) + " per accepted one)");
    }
    return r;
  }

  // ---------------------------------------------------------------- state
  void save_state(StateWriter& w) const {
    w.text("type", "flow_posterior");
    w.integer("theta_dim", theta_dim());
    w.integer("x_dim", x_dim());
    w.flag("trained", trained_);
    w.vector("theta_mean", theta_mean_);
    w.vector("theta_std", theta_std_);
    w.vector("x_mean", x_mean_);
    w.vector("x_std", x_std_);
    StateWriter f = w.scope("field");
    field_.save_state(f);
  }
  /// Checks the type and dimensions (CheckpointMismatchError otherwise) and that every standard
  /// deviation is finite and > 0, then loads the normalisation and the field.
  void load_state(const StateReader& r) {
    r.expect_text("type", "flow_posterior", "type");
    if (r.integer("theta_dim") != theta_dim() || r.integer("x_dim") != x_dim())
      r.fail("holds a posterior of theta_dim " + std::to_string(r.integer("theta_dim")) + " and x_dim " +
             std::to_string(r.integer("x_dim")) + ", this one has " + std::to_string(theta_dim()) + " and " +
             std::to_string(x_dim()));
    Vector<double> tm = r.template vector<double>("theta_mean", theta_dim());
    Vector<double> ts = r.template vector<double>("theta_std", theta_dim());
    Vector<double> xm = r.template vector<double>("x_mean", x_dim());
    Vector<double> xs = r.template vector<double>("x_std", x_dim());
    for (const Vector<double>* v : {&tm, &xm})
      if (!v->allFinite()) r.fail("holds a non-finite normalisation mean");
    for (const Vector<double>* v : {&ts, &xs})
      if (!(v->allFinite() && (v->array() > 0.0).all())) r.fail("holds a normalisation std that is not finite and > 0");
    const bool trained = r.flag("trained");
    field_.load_state(r.scope("field"));
    theta_mean_ = std::move(tm);
    theta_std_ = std::move(ts);
    x_mean_ = std::move(xm);
    x_std_ = std::move(xs);
    trained_ = trained;
  }

 private:
  static PosteriorOptions checked(PosteriorOptions o) {
    constexpr const char* where = "flowmatch::sbi::FlowPosterior";
    if (o.hidden.empty()) flowmatch::detail::throw_invalid(where, "options.hidden", "{}", "needs at least one hidden layer");
    if (!(o.time_exponent >= 0.0 && std::isfinite(o.time_exponent)))
      flowmatch::detail::throw_invalid(where, "options.time_exponent", o.time_exponent, "must be finite and >= 0");
    if (!(o.time_uniform_weight >= 0.0 && o.time_uniform_weight <= 1.0))
      flowmatch::detail::throw_invalid(where, "options.time_uniform_weight", o.time_uniform_weight, "must lie in [0, 1]");
    if (!(o.ema_decay >= 0.0 && o.ema_decay < 1.0))
      flowmatch::detail::throw_invalid(where, "options.ema_decay", o.ema_decay, "must lie in [0, 1)");
    if (!(o.sigma_min >= 0.0 && o.sigma_min < 1.0))
      flowmatch::detail::throw_invalid(where, "options.sigma_min", o.sigma_min, "must lie in [0, 1)");
    flowmatch::detail::require_positive_count(where, "options.batch_size", o.batch_size);
    if (!(o.learning_rate > 0.0 && std::isfinite(o.learning_rate)))
      flowmatch::detail::throw_invalid(where, "options.learning_rate", o.learning_rate, "must be finite and > 0");
    if (!(o.validation_fraction > 0.0 && o.validation_fraction < 1.0))
      flowmatch::detail::throw_invalid(where, "options.validation_fraction", o.validation_fraction, "must lie in (0, 1)");
    flowmatch::detail::require_positive_count(where, "options.validation_draws", o.validation_draws);
    flowmatch::detail::require_positive_count(where, "options.max_epochs", o.max_epochs);
    flowmatch::detail::require_positive_count(where, "options.patience", o.patience);
    if (o.lr_patience < 0) flowmatch::detail::throw_invalid(where, "options.lr_patience", o.lr_patience, "must be >= 0");
    if (!(o.max_seconds >= 0.0 && std::isfinite(o.max_seconds)))
      flowmatch::detail::throw_invalid(where, "options.max_seconds", o.max_seconds, "must be finite and >= 0 (0: no limit)");
    flowmatch::detail::require_positive_count(where, "options.ode_steps", o.ode_steps);
    return o;
  }
  static Index checked_dim(const char* name, Index d) {
    flowmatch::detail::require_positive_count("flowmatch::sbi::FlowPosterior", name, d);
    return d;
  }
  template <class D>
  static void check_finite(const char* where, const char* name, const Eigen::MatrixBase<D>& m) {
    for (Index j = 0; j < m.cols(); ++j)
      for (Index i = 0; i < m.rows(); ++i)
        if (!std::isfinite(static_cast<double>(m(i, j))))
          flowmatch::detail::throw_invalid(where, std::string(name) + "(" + std::to_string(i) + ", " + std::to_string(j) + ")",
                                static_cast<double>(m(i, j)), "every simulation must be finite");
  }
  template <class DX>
  void check_observation(const char* where, const Eigen::MatrixBase<DX>& x_o) const {
    if (x_o.cols() != 1) flowmatch::detail::throw_dimension(where, "x_o", "columns (one observation)", x_o.cols(), 1);
    flowmatch::detail::require_rows(where, "x_o", x_o.rows(), x_dim());
    check_finite(where, "x_o", x_o);
  }

  // Mean and standard deviation (n - 1) per coordinate of the training split; a coordinate that
  // does not vary gets std 1 (it carries no information, and must not divide by 0).
  void set_normalisation(const Matrix<double>& theta, const Matrix<double>& x) {
    const auto stats = [](const Matrix<double>& m, Vector<double>& mean, Vector<double>& sd) {
      mean = m.rowwise().mean();
      const double denom = static_cast<double>(std::max<Index>(1, m.cols() - 1));
      sd = ((m.colwise() - mean).array().square().rowwise().sum() / denom).sqrt().matrix();
      for (Index i = 0; i < sd.size(); ++i)
        if (!(sd(i) > 1e-12 * std::max(1.0, std::abs(mean(i))))) sd(i) = 1.0;
    };
    stats(theta, theta_mean_, theta_std_);
    stats(x, x_mean_, x_std_);
  }
  void normalise_theta(Matrix<double>& m) const {
    m = (m.colwise() - theta_mean_).array().colwise() / theta_std_.array();
  }
  void normalise_x(Matrix<double>& m) const { m = (m.colwise() - x_mean_).array().colwise() / x_std_.array(); }

  // RK4 from t = 0 to 1 on the normalised state, conditioned on the shared normalised x_o.
  template <class DX>
  void integrate(const Eigen::MatrixBase<DX>& x_o, Matrix<S>& state) const {
    ConditionBatch<S> c;
    const Vector<double> xz = (x_o.col(0).template cast<double>() - x_mean_).cwiseQuotient(x_std_);
    c.set_shared_context(xz, state.cols());
    GuidedVectorFieldODE<Field> ode(field_, c, 0.0);
    ODESimulator<GuidedVectorFieldODE<Field>, RK4Stepper<S>> sim(ode);
    sim.simulate_inplace(state, Index(options_.ode_steps));
  }

  PosteriorOptions options_;
  Field field_;
  Vector<double> theta_mean_, theta_std_, x_mean_, x_std_;
  bool trained_ = false;
};

}  // namespace flowmatch::sbi
