// CFMTrainer's guards: a NaN injected into a batch stops training with an error naming the step and
// the model unchanged, or (SkipBatch) skips that batch; consecutive skips are bounded; gradient
// clipping by global norm scales the update exactly.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// A standard Gaussian whose draws number first..last (1-based calls of sample()) hold one NaN:
// bad data reaching the trainer.
struct PoisonedGaussian {
  Gaussian base = Gaussian::standard(2, 1.0);
  std::shared_ptr<long long> calls = std::make_shared<long long>(0);
  long long first = 0, last = -1;

  Index dim() const { return base.dim(); }
  template <class D>
  void sample(Rng& rng, const Eigen::MatrixBase<D>& out_) const {
    auto& out = detail::writable(out_);
    base.sample(rng, out);
    const long long k = ++*calls;
    if (k >= first && k <= last) out(1, out.cols() / 2) = std::numeric_limits<typename D::Scalar>::quiet_NaN();
  }
};
static_assert(SampleableDistribution<PoisonedGaussian>);

using PoisonedPath = GaussianConditionalPath<LinearAlpha, LinearBeta, PoisonedGaussian>;

PoisonedPath poisoned(long long first, long long last) {
  PoisonedGaussian g;
  g.first = first;
  g.last = last;
  return PoisonedPath(g);
}

// An MLP whose backward pass writes a NaN into the gradient at one call (finite loss, bad
// gradient): what check_gradient exists for.
struct NaNGradientModel {
  using Scalar = float;
  using Workspace = MLPVectorField<float>::Workspace;
  MLPVectorField<float> inner{2, {16}, 1};
  long long backward_calls = 0, poison_at = -1;

  Index dim() const { return inner.dim(); }
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    inner.forward(x, t, out, ws);
  }
  template <class DX, TimeArgument T>
  const Matrix<float>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
    return inner.forward_train(x, t, ws);
  }
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
    inner.backward(grad_out, ws);
    if (++backward_calls == poison_at) inner.gradients()(5) = std::numeric_limits<float>::quiet_NaN();
  }
  Vector<float>& parameters() { return inner.parameters(); }
  const Vector<float>& parameters() const { return inner.parameters(); }
  Vector<float>& gradients() { return inner.gradients(); }
  const Vector<float>& gradients() const { return inner.gradients(); }
};
static_assert(TrainableVectorField<NaNGradientModel>);

}  // namespace

TEST_CASE("Training guard: check_gradient stops a non-finite gradient before it reaches the optimizer", "[train][errors][guards]") {
  using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian>;
  const Path path(Gaussian::standard(2, 1.0));
  for (const bool check : {false, true}) {
    INFO("check_gradient " << check);
    NaNGradientModel model;
    model.poison_at = 3;
    Adam<float> adam(1e-2);
    TrainerOptions options;
    options.check_gradient = check;
    CFMTrainer trainer(path, model, adam, 4, options);
    trainer.train(2, 32);
    const Vector<float> after_step2 = model.parameters();
    if (!check) {
      // Unchecked, the NaN goes through Adam into the parameters (and every later loss is NaN).
      CHECK(std::isfinite(trainer.step(32)));
      CHECK_FALSE(model.parameters().allFinite());
      CHECK_THROWS_AS(trainer.step(32), NumericalError);
    } else {
      CHECK_THROWS_WITH(trainer.step(32), Catch::Contains("gradient norm is nan at step 3"));
      CHECK(model.parameters() == after_step2);
      CHECK(adam.steps_taken() == 2);
      CHECK(std::isfinite(trainer.step(32)));  // the next gradient is clean
      CHECK(model.parameters().allFinite());
    }
  }
}

TEST_CASE("Training guard: a NaN in a batch stops training with the step named and the model unchanged", "[train][errors][guards]") {
  MLPVectorField<float> model(2, {16}, 1);
  Adam<float> adam(1e-2);
  CFMTrainer trainer(poisoned(6, 6), model, adam, 2);
  Vector<float> after_step5;
  std::string message;
  try {
    trainer.train(10, 32, [&](const TrainProgress& p) {
      if (p.step == 5) after_step5 = model.parameters();
    });
  } catch (const NumericalError& e) {
    message = e.what();
  }
  INFO(message);
  CHECK_THAT(message, Catch::Contains("loss is nan") && Catch::Contains("at step 6"));
  CHECK(trainer.steps_done() == 5);
  CHECK(adam.steps_taken() == 5);
  REQUIRE(after_step5.size() == model.parameters().size());
  CHECK(model.parameters() == after_step5);  // left at the last good step
  // Training can go on after the error: the next batch is clean.
  CHECK(std::isfinite(trainer.step(32)));
  CHECK(trainer.steps_done() == 6);
}

TEST_CASE("Training guard: SkipBatch drops the bad batches and trains on", "[train][guards]") {
  TrainerOptions options;
  options.on_non_finite = NonFinitePolicy::SkipBatch;
  MLPVectorField<float> model(2, {16}, 1);
  Adam<float> adam(1e-2);
  CFMTrainer trainer(poisoned(3, 4), model, adam, 2, options);
  std::vector<bool> skipped;
  Vector<float> after_step2;
  const std::vector<double> losses = trainer.train(8, 32, [&](const TrainProgress& p) {
    skipped.push_back(p.skipped);
    if (p.step == 2) after_step2 = model.parameters();
    if (p.step == 4) CHECK(model.parameters() == after_step2);  // the skipped steps changed nothing
  });
  REQUIRE(losses.size() == 8);
  CHECK(std::isnan(losses[2]));
  CHECK(std::isnan(losses[3]));
  for (std::size_t k : {0u, 1u, 4u, 5u, 6u, 7u}) CHECK(std::isfinite(losses[k]));
  CHECK(skipped == std::vector<bool>{false, false, true, true, false, false, false, false});
  CHECK(trainer.skipped_steps() == 2);
  CHECK(trainer.steps_done() == 8);
  CHECK(adam.steps_taken() == 6);
  CHECK(model.parameters().allFinite());

  // A run that never recovers ends after max_consecutive_skips skipped batches in a row.
  options.max_consecutive_skips = 3;
  MLPVectorField<float> model2(2, {16}, 1);
  Adam<float> adam2(1e-2);
  CFMTrainer trainer2(poisoned(2, 1000), model2, adam2, 2, options);
  CHECK_THROWS_WITH(trainer2.train(10, 32), Catch::Contains("at step 5") && Catch::Contains("max_consecutive_skips = 3"));
  CHECK(trainer2.skipped_steps() == 3);
  CHECK(adam2.steps_taken() == 1);
}

TEST_CASE("Training guard: clipping by global norm scales the gradient to the bound", "[train][guards]") {
  using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian>;
  const Path path(Gaussian::standard(2, 3.0));
  for (const double bound : {1e-3, 1e6}) {
    INFO("max_grad_norm " << bound);
    MLPVectorField<double> model(2, {16}, 1);
    MLPVectorField<double> reference = model;
    SGD<double> sgd(1.0);
    TrainerOptions options;
    options.max_grad_norm = bound;
    CFMTrainer trainer(path, model, sgd, 5, options);
    const Vector<double> before = model.parameters();
    trainer.step(64);
    const double norm = trainer.last_gradient_norm();
    // The same step without clipping, for the unclipped gradient.
    SGD<double> sgd_ref(1.0);
    CFMTrainer plain(path, reference, sgd_ref, 5);
    plain.step(64);
    const Vector<double> full_update = before - reference.parameters();
    CHECK(norm == Approx(full_update.norm()).epsilon(1e-12));
    const Vector<double> update = before - model.parameters();
    if (bound < norm) {
      CHECK(trainer.clipped_steps() == 1);
      CHECK(update.norm() == Approx(bound).epsilon(1e-9));
      CHECK((update - full_update * (bound / norm)).norm() < 1e-12 * bound);
    } else {
      CHECK(trainer.clipped_steps() == 0);
      CHECK(update == full_update);
    }
  }
  MLPVectorField<double> model(2, {4}, 1);
  SGD<double> sgd(1.0);
  TrainerOptions bad;
  bad.max_grad_norm = -1.0;
  CHECK_THROWS_AS(CFMTrainer(path, model, sgd, 1, bad), InvalidArgument);
  bad.max_grad_norm = 0.0;
  bad.max_consecutive_skips = 0;
  CHECK_THROWS_WITH(CFMTrainer(path, model, sgd, 1, bad), Catch::Contains("max_consecutive_skips"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
