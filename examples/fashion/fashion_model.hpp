#pragma once
// The core of examples/fashion, shared with its smoke test (tests/examples/fashion_test.cpp): a
// labelled image set as a flowmatch distribution, the class-conditional flow model with its
// trainer (label dropout, Adam with warm-up and cosine decay, EMA), checkpoints, and sampling with
// classifier-free guidance. Not part of the library (no install); needs flowmatch::idx (zlib).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <numbers>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <flowmatch.hpp>
#include <flowmatch/evaluation.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/io/idx.hpp>
#include <flowmatch/nn/unet_vector_field.hpp>
#if FLOWMATCH_EXAMPLES_MPI
#include <flowmatch/distributed.hpp>
#endif

namespace flowmatch::fashion {

/// A labelled image set as a distribution of (image, class) pairs (a LabelledDistribution, on the
/// library's one sampling convention: sample, sample_labelled and sample_with_condition all come
/// from sample_impl): draws columns uniformly with replacement. Shares its data between copies
/// (the path and the trainer copy it). (An Empirical with labels holds the same, in double.)
class LabelledImageSet : public DistributionBase<LabelledImageSet> {
 public:
  LabelledImageSet(Matrix<float> images, const Eigen::VectorXi& labels, Index num_classes)
      : images_(std::make_shared<const Matrix<float>>(std::move(images))),
        labels_(std::make_shared<const Eigen::VectorXi>(labels)),
        classes_(num_classes) {
    constexpr const char* where = "flowmatch::fashion::LabelledImageSet";
    detail::require_positive_count(where, "images.cols()", images_->cols());
    if (labels_->size() != images_->cols())
      detail::throw_dimension(where, "labels", "size", labels_->size(), images_->cols());
    if (labels_->minCoeff() < 0 || labels_->maxCoeff() >= num_classes)
      detail::throw_invalid(where, "labels", labels_->maxCoeff(), "every label must lie in [0, num_classes)");
  }
  explicit LabelledImageSet(const LabeledImages& d, Index num_classes = 10)
      : LabelledImageSet(d.images, d.labels, num_classes) {}

  Index dim() const { return images_->rows(); }
  Index size() const { return images_->cols(); }
  Index num_classes() const { return classes_; }
  const Matrix<float>& images() const { return *images_; }
  const Eigen::VectorXi& labels() const { return *labels_; }

 private:
  friend DistributionBase<LabelledImageSet>;
  template <class D>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<D>& out_, Index* labels) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::fashion::LabelledImageSet::sample", "out", out.rows(), dim());
    for (Index j = 0; j < out.cols(); ++j) {
      const auto k = static_cast<Index>(rng.below(static_cast<std::uint64_t>(size())));
      if (labels) labels[j] = (*labels_)(k);
      out.col(j) = images_->col(k).template cast<typename D::Scalar>();
    }
  }

  std::shared_ptr<const Matrix<float>> images_;
  std::shared_ptr<const Eigen::VectorXi> labels_;
  Index classes_;
};

/// Synthetic stand-in for Fashion-MNIST (tests without the data set): 28 x 28 images in [-1, 1],
/// class c a bright bar at an angle of c * 18 degrees through the centre on a dark background,
/// with its position jittered (1 pixel std) and pixel noise. Easy to tell apart, and 784-D like the real thing.
inline LabeledImages synthetic_images(Index per_class, Index classes, std::uint64_t seed) {
  LabeledImages d;
  d.rows = d.cols = 28;
  d.images.resize(784, per_class * classes);
  d.labels.resize(per_class * classes);
  Rng rng(seed);
  for (Index j = 0; j < d.images.cols(); ++j) {
    const Index c = j % classes;
    d.labels(j) = static_cast<int>(c);
    const double angle = std::numbers::pi * static_cast<double>(c) / static_cast<double>(classes);
    const double dx = rng.normal(), dy = rng.normal();
    for (int r = 0; r < 28; ++r)
      for (int q = 0; q < 28; ++q) {
        const double x = q - 13.5 - dx, y = r - 13.5 - dy;
        const double dist = std::abs(-std::sin(angle) * x + std::cos(angle) * y);
        const double v = (dist < 3.0 && x * x + y * y < 121.0 ? 0.9 : -0.9) + 0.1 * rng.normal();
        d.images(r * 28 + q, j) = static_cast<float>(std::clamp(v, -1.0, 1.0));
      }
  }
  return d;
}

/// The two models: the MLP on [x; fourier(t); onehot(y); t], and the convolutional U-Net
/// (nn/unet_vector_field.hpp), --model unet.
using Model = ClassConditionalVectorField<float, SiLU>;
using UNetModel = UNetVectorField<float>;
using Network = std::remove_cvref_t<decltype(std::declval<Model&>().network())>;
using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, LabelledImageSet>;

/// Learning-rate factor: linear warm-up over the first `warmup` steps of the run, then cosine decay
/// from 1 to `final_factor` over the run's progress in [0, 1] (steps done / steps, or seconds spent
/// / time budget), both read from the shared state the training loop updates before each step.
/// (WarmupCosineLR's formula with the time budget's progress in place of the step index.)
struct ProgressCosineLR {
  struct State {
    long long step = 0;      // steps taken in this run
    double progress = 0.0;   // fraction of this run's budget used
  };
  std::shared_ptr<const State> state;
  long long warmup = 200;
  double final_factor = 0.05;

  double operator()(long long /*k*/) const {
    if (state->step < warmup) return static_cast<double>(state->step + 1) / static_cast<double>(warmup);
    const double p = std::clamp(state->progress, 0.0, 1.0);
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
  }
};
using Optim = ScheduledOptimizer<Adam<float>, ProgressCosineLR>;

struct ModelConfig {
  std::vector<Index> hidden{1024, 1024};
  Index frequencies = 8;  // Fourier time features: 2 x frequencies inputs
  UNetOptions unet;       // the U-Net's shape (28 x 28 grey images; its own frequencies)
};

/// Builds the model of type M for 28 x 28 images of `classes` classes from the configuration.
template <class M>
M make_model(Index dim, Index classes, const ModelConfig& mc, std::uint64_t seed) {
  if constexpr (std::is_same_v<M, UNetModel>) {
    if (dim != mc.unet.channels * mc.unet.height * mc.unet.width)
      detail::throw_dimension("flowmatch::fashion::make_model", "data", "dimension", dim,
                              mc.unet.channels * mc.unet.height * mc.unet.width);
    return M(mc.unet, ConditionKind::Label, classes, seed);
  } else {
    return M(dim, classes, mc.hidden, seed, mc.frequencies);
  }
}

struct TrainConfig {
  Index batch = 128;
  double lr = 1e-3;            // peak learning rate (Adam)
  double label_dropout = 0.1;  // condition dropout: trains u(x | no label) for guidance
  double ema_decay = 0.999;
  long long warmup = 200;
  double final_lr_factor = 0.05;
  std::uint64_t seed = 0;
};

/// The class-conditional flow on images: u(x, t | y), a U-Net or the MLP on [x; fourier(t);
/// onehot(y); t] (the model type M: BasicFashionFlow<UNetModel> or FashionFlow), trained
/// on the rectified (OT) path x_t = t z + (1 - t) eps (alpha_t = t, beta_t = 1 - t: the target
/// u = z - eps is constant along each line) by the library's CFMTrainer, each batch carrying its
/// labels (TrainingBatch::condition) and dropping them with probability label_dropout
/// (TrainerOptions::condition_dropout), Adam with warm-up and cosine decay, and an EMA of the
/// weights for sampling.
template <class M>
class BasicFashionFlow {
 public:
  using Model = M;
  BasicFashionFlow(const LabelledImageSet& data, const ModelConfig& mc, const TrainConfig& tc)
      : config_(tc),
        state_(std::make_shared<ProgressCosineLR::State>()),
        model_(make_model<M>(data.dim(), data.num_classes(), mc, tc.seed)),
        optimizer_(Adam<float>(tc.lr), ProgressCosineLR{state_, std::max<long long>(1, tc.warmup), tc.final_lr_factor}),
        trainer_(make_trainer(Path(data, LinearAlpha{}, LinearBeta{}), model_, optimizer_, tc)),
        ema_(tc.ema_decay) {}
  BasicFashionFlow(const BasicFashionFlow&) = delete;
  BasicFashionFlow& operator=(const BasicFashionFlow&) = delete;

  /// One training step (at progress `progress` of the run's budget, which sets the learning rate)
  /// and the EMA update; returns the step's loss.
  double step(double progress) {
    state_->progress = progress;
    const double loss = trainer_.step(config_.batch);
    ++state_->step;
    ema_.update(model_.parameters());
    return loss;
  }

  /// The learning rate of the next step.
  double learning_rate() const { return optimizer_.learning_rate(); }
  long long steps_done() const { return trainer_.steps_done(); }
  long long steps_this_run() const { return state_->step; }
  Index num_parameters() const { return model_.num_parameters(); }
  const TrainConfig& config() const { return config_; }
  Model& model() { return model_; }
  const Model& model() const { return model_; }

  /// A copy of the model with the EMA weights (the model itself before any step).
  Model ema_model() const {
    Model m = model_;
    if (ema_.updates() > 0) ema_.copy_to(m.parameters());
    return m;
  }

  /// Writes everything to one safetensors file, atomically (io/checkpoint.hpp): the trainer's
  /// parts (the conditional field with its settings under "model", Adam and the schedule's position
  /// under "optimizer", the step counts and generator under "trainer") and the EMA under "ema".
  /// (Built with MPI: collective, rank 0 writes.)
  void save(const std::filesystem::path& file) {
#if FLOWMATCH_EXAMPLES_MPI
    distributed::save_checkpoint(file, trainer_, state_part("ema", ema_));
#else
    save_checkpoint(file, trainer_, state_part("ema", ema_));
#endif
  }

  /// Restores what save() wrote (the architecture must match: CheckpointMismatchError otherwise,
  /// and nothing is changed). In a resumed run the cosine decay runs again over the new budget,
  /// without a second warm-up (Adam's moments are restored).
  void load(const std::filesystem::path& file) {
#if FLOWMATCH_EXAMPLES_MPI
    distributed::load_checkpoint(file, trainer_, state_part("ema", ema_));
#else
    load_checkpoint(file, trainer_, state_part("ema", ema_));
#endif
    state_->step = config_.warmup;
  }

 private:
  TrainConfig config_;
  std::shared_ptr<ProgressCosineLR::State> state_;
  Model model_;
  Optim optimizer_;
  // Built with MPI (examples/common/mpi_job.hpp), data-parallel over every rank: the batch is the
  // global batch; with one rank the very CFMTrainer run.
#if FLOWMATCH_EXAMPLES_MPI
  using Trainer = distributed::DataParallelTrainer<Path, Model, Optim>;
#else
  using Trainer = CFMTrainer<Path, Model, Optim>;
#endif
  Trainer trainer_;
  ExponentialMovingAverage<float> ema_;

  static Trainer make_trainer(Path path, Model& model, Optim& optimizer, const TrainConfig& tc) {
    TrainerOptions options;
    options.condition_dropout = tc.label_dropout;
#if FLOWMATCH_EXAMPLES_MPI
    return Trainer(distributed::Communicator(), std::move(path), model, optimizer, tc.seed + 1, options);
#else
    return Trainer(std::move(path), model, optimizer, tc.seed + 1, options);
#endif
  }
};

/// The MLP flow (what the smoke test trains).
using FashionFlow = BasicFashionFlow<Model>;

/// Stages (field evaluations a step) of the fixed-step stepper named `solver` (one of
/// flowmatch::stepper_names(); InvalidArgument listing them otherwise).
inline Index solver_stages(const std::string& solver) {
  return visit_stepper<float>(solver, []<class St>(std::type_identity<St>) { return Index{St::stages}; });
}

/// Integration steps for a budget of `nfe` evaluations of the guided field (each of which is two
/// network passes when the guidance weight is not 0): max(1, nfe / stages).
inline Index solver_steps(const std::string& solver, Index nfe) { return std::max<Index>(1, nfe / solver_stages(solver)); }

/// Integrates dx/dt = (1 + w) u(x, t | y) - w u(x, t | empty) (GuidedVectorFieldODE) from the
/// noise x0 at t = 0 to t = 1 with `steps` uniform steps of `solver`, in chunks of `chunk` columns
/// (bounded memory); returns the images (dim x n). `solver` names a fixed-step stepper
/// (ode/stepper_registry.hpp).
template <class M>
Matrix<float> sample_images(const M& model, const Vector<Index>& labels, double guidance, const std::string& solver,
                                   Index steps, const Matrix<float>& x0, Index chunk = 500) {
  Matrix<float> x = x0;
  const Vector<double> ts = linspace(0.0, 1.0, steps + 1);
  for (Index c0 = 0; c0 < x.cols(); c0 += chunk) {
    const Index n = std::min(chunk, x.cols() - c0);
    GuidedVectorFieldODE ode(model, labels.segment(c0, n), guidance);
    Matrix<float> block = x.middleCols(c0, n);
    visit_stepper<float>(solver, [&]<class St>(std::type_identity<St>) {
      ODESimulator<decltype(ode), St>(ode).simulate_inplace(block, ts);
    });
    x.middleCols(c0, n) = block;
  }
  return x;
}

}  // namespace flowmatch::fashion
