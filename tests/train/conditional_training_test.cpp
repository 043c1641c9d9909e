// One CFMTrainer for conditional models: a vector-conditioned flow learns to follow its condition,
// condition dropout has the right rate, the guards apply to conditional batches, several
// callbacks, and the trainer's state (counters and generator; with Stateful doubles, model and
// optimizer too) resumes a run exactly.

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <flowmatch/core/state.hpp>
#include <flowmatch/distribution/empirical.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/nn/conditional_field.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/classifier_free_guidance.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// 2-D points whose mean is their 2-D context: context ~ U[-2, 2]^2, x = context + 0.3 eps.
Empirical mean_is_condition(Index n, std::uint64_t seed) {
  Rng rng(seed);
  Matrix<double> context(2, n), points(2, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < 2; ++i) {
      context(i, j) = 4.0 * rng.uniform() - 2.0;
      points(i, j) = context(i, j) + 0.3 * rng.normal();
    }
  return Empirical::with_context(std::move(points), std::move(context));
}

using VectorPath = GaussianConditionalPath<LinearAlpha, LinearBeta, Empirical>;

// Pairs (x, context) whose context holds a NaN on the calls first..last (1-based): bad data.
struct PoisonedContext {
  Empirical base = mean_is_condition(64, 1);
  std::shared_ptr<long long> calls = std::make_shared<long long>(0);
  long long first = 0, last = -1;

  Index dim() const { return base.dim(); }
  Index condition_dim() const { return base.condition_dim(); }
  ConditionKind condition_kind() const { return base.condition_kind(); }
  template <class D>
  void sample(Rng& rng, const Eigen::MatrixBase<D>& out) const {
    base.sample(rng, out);
  }
  template <class D, Real S>
  void sample_with_condition(Rng& rng, const Eigen::MatrixBase<D>& out, ConditionBatch<S>& c) const {
    base.sample_with_condition(rng, out, c);
    const long long k = ++*calls;
    if (k >= first && k <= last) c.context(0, c.context.cols() / 2) = std::numeric_limits<S>::quiet_NaN();
  }
};
static_assert(ContextDistribution<PoisonedContext>);

// A model with the state protocol (its parameters as one tensor): a stand-in for models whose
// save_state is not there yet.
template <class Base>
struct ParamsState : Base {
  using Base::Base;
  void save_state(StateWriter& w) const { w.vector("params", this->parameters()); }
  void load_state(const StateReader& r) {
    this->parameters() = r.vector<typename Base::Scalar>("params", this->parameters().size());
  }
};

// SGD with momentum and its state (velocity and step count): a Stateful optimizer double.
struct MomentumSGD {
  using Scalar = double;
  double lr = 0.05, momentum = 0.9;
  Vector<double> velocity;
  long long steps = 0;
  void step(Vector<double>& p, const Vector<double>& g) {
    if (velocity.size() != g.size()) velocity.setZero(g.size());
    velocity = momentum * velocity + g;
    p -= lr * velocity;
    ++steps;
  }
  void reset(Index n) { velocity.setZero(n); steps = 0; }
  double learning_rate() const { return lr; }
  void set_learning_rate(double v) { lr = v; }
  long long steps_taken() const { return steps; }
  void save_state(StateWriter& w) const {
    w.integer("steps", steps);
    w.vector("velocity", velocity);
  }
  void load_state(const StateReader& r) {
    steps = r.integer("steps");
    velocity = r.vector<double>("velocity", r.shape("velocity").at(0));
  }
};

}  // namespace

TEST_CASE("Vector-conditional training: the samples' mean follows the condition", "[train][conditional][statistical]") {
  const auto start = std::chrono::steady_clock::now();
  const VectorPath path(mean_is_condition(4000, 3));
  ConditionalVectorField<float> model(2, ConditionKind::Vector, 2, {48, 48}, 5, 2);
  Adam<float> adam(3e-3);
  TrainerOptions options;
  options.condition_dropout = 0.1;
  CFMTrainer trainer(path, model, adam, 7, options);
  const std::vector<double> losses = trainer.train(600, 128);
  CHECK(trainer.last_batch().condition.kind == ConditionKind::Vector);
  // 300 samples for each of four conditions; their mean must land near the condition. Measured
  // (these seeds): mean errors 0.03-0.09 (the standard error of a mean of 300 is 0.025 per
  // coordinate), spread 0.43 given the condition and 1.64 without. Thresholds 0.25, 0.7 and 1.3.
  const Index per = 300;
  Matrix<double> conditions(2, 4);
  conditions << -1.5, 1.5, 0.0, 1.0,  //
      1.0, -1.0, 0.0, 1.5;
  Matrix<float> context(2, 4 * per);
  for (Index j = 0; j < context.cols(); ++j) context.col(j) = conditions.col(j / per).cast<float>();
  Rng rng(8);
  Matrix<float> x = Gaussian::standard(2).sample<float>(4 * per, rng);
  GuidedVectorFieldODE ode(model, context, 0.0);
  EulerSimulator sim(ode);
  sim.simulate_inplace(x, linspace(0.0, 1.0, 41));
  double worst = 0.0, spread = 0.0;
  for (Index k = 0; k < 4; ++k) {
    const Vector<double> mean = x.middleCols(k * per, per).cast<double>().rowwise().mean();
    const double err = (mean - conditions.col(k)).norm();
    worst = std::max(worst, err);
    spread += std::sqrt((x.middleCols(k * per, per).cast<double>().colwise() - mean).squaredNorm() / double(per)) / 4.0;
    INFO("condition (" << conditions(0, k) << ", " << conditions(1, k) << "): sample mean (" << mean(0) << ", "
                       << mean(1) << "), error " << err);
    CHECK(err < 0.25);
  }
  // Unconditional samples (the condition dropped everywhere) spread over the whole square instead.
  Matrix<float> xu = Gaussian::standard(2).sample<float>(per, rng);
  ConditionBatch<float> none;
  none.set_context(2, per);
  none.context.setZero();
  none.present.setZero();
  GuidedVectorFieldODE uncond(model, none, 0.0);
  EulerSimulator usim(uncond);
  usim.simulate_inplace(xu, linspace(0.0, 1.0, 41));
  const Vector<double> umean = xu.cast<double>().rowwise().mean();
  const double uspread = std::sqrt((xu.cast<double>().colwise() - umean).squaredNorm() / double(per));
  INFO("worst mean error " << worst << "; spread given the condition " << spread << ", without " << uspread);
  CHECK(spread < 0.7);   // x | c has spread 0.3 * sqrt(2) = 0.42
  CHECK(uspread > 1.3);  // x alone: U[-2, 2]^2 plus noise, spread about 1.7
  CHECK(losses.back() < losses.front());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("took " << seconds << " s");
  CHECK(seconds < 10.0);
}

TEST_CASE("Condition dropout drops each condition with its probability, from the trainer's generator", "[train][conditional][statistical]") {
  const VectorPath path(mean_is_condition(100, 4));
  for (const double p : {0.0, 0.3}) {
    INFO("condition_dropout " << p);
    ConditionalVectorField<float> model(2, ConditionKind::Vector, 2, {8}, 1);
    Adam<float> adam(1e-3);
    TrainerOptions options;
    options.condition_dropout = p;
    CFMTrainer trainer(path, model, adam, 9, options);
    double dropped = 0.0, total = 0.0;
    bool zero_context_where_dropped = true;
    trainer.train(200, 100, [&](const TrainProgress&) {
      const ConditionBatch<float>& c = trainer.last_batch().condition;
      for (Index j = 0; j < c.present.size(); ++j) {
        dropped += c.present(j) == 0.0f;
        total += 1.0;
        // The context itself is kept (the model ignores it where dropped).
        zero_context_where_dropped = zero_context_where_dropped && c.context.col(j).allFinite();
      }
    });
    CHECK(zero_context_where_dropped);
    if (p == 0.0) CHECK(dropped == 0.0);
    else CHECK(std::abs(dropped - p * total) <= test::kSigmas * test::binomial_sd(total, p));
  }
  // The dropout draws come after the batch's: the first batch is the same with or without dropout.
  ConditionalVectorField<float> m1(2, ConditionKind::Vector, 2, {8}, 1), m2 = m1;
  Adam<float> a1(1e-3), a2(1e-3);
  TrainerOptions drop;
  drop.condition_dropout = 0.5;
  CFMTrainer t1(path, m1, a1, 3), t2(path, m2, a2, 3, drop);
  t1.step(64);
  t2.step(64);
  CHECK(t1.last_batch().x == t2.last_batch().x);
  CHECK(t1.last_batch().condition.context == t2.last_batch().condition.context);
  CHECK(t2.last_batch().condition.present.minCoeff() == 0.0f);
}

TEST_CASE("Training guards apply to conditional batches: a NaN context throws, or is skipped", "[train][conditional][guards]") {
  using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, PoisonedContext>;
  PoisonedContext bad;
  bad.first = bad.last = 4;
  {
    ConditionalVectorField<float> model(2, ConditionKind::Vector, 2, {16}, 1);
    Adam<float> adam(1e-2);
    CFMTrainer trainer(Path(bad), model, adam, 2);
    trainer.train(3, 32);
    const Vector<float> after3 = model.parameters();
    CHECK_THROWS_WITH(trainer.step(32), Catch::Contains("loss is nan at step 4"));
    CHECK(model.parameters() == after3);
    CHECK(adam.steps_taken() == 3);
    CHECK(std::isfinite(trainer.step(32)));
  }
  PoisonedContext bad2;
  bad2.first = 2;
  bad2.last = 3;
  ConditionalVectorField<float> model(2, ConditionKind::Vector, 2, {16}, 1);
  Adam<float> adam(1e-2);
  TrainerOptions options;
  options.on_non_finite = NonFinitePolicy::SkipBatch;
  options.max_grad_norm = 1.0;
  options.condition_dropout = 0.2;
  CFMTrainer trainer(Path(bad2), model, adam, 2, options);
  const std::vector<double> losses = trainer.train(6, 32);
  CHECK(std::isnan(losses[1]));
  CHECK(std::isnan(losses[2]));
  CHECK(trainer.skipped_steps() == 2);
  CHECK(adam.steps_taken() == 4);
  CHECK(model.parameters().allFinite());
  CHECK(trainer.last_gradient_norm() > 0.0);
}

TEST_CASE("train() calls several callbacks after every step; any returning false stops", "[train]") {
  const GaussianConditionalPath path(GaussianMixture::symmetric_2D(4, 0.5, 3.0), LinearAlpha{}, LinearBeta{});
  MLPVectorField<float> model(2, {16}, 1);
  Adam<float> adam(1e-3);
  CFMTrainer trainer(path, model, adam, 2);
  std::vector<std::string> calls;
  const auto logger = [&](const TrainProgress& p) { calls.push_back("log" + std::to_string(p.step)); };
  long long counted = 0;
  const auto counter = [&](const TrainProgress&) { ++counted; };
  const auto stopper = [&](const TrainProgress& p) {
    calls.push_back("stop?" + std::to_string(p.step));
    return p.step < 3;
  };
  const std::vector<double> losses = trainer.train(10, 16, logger, stopper, counter);
  CHECK(losses.size() == 3);
  CHECK(counted == 3);  // the callback after the stopping one still sees the last step
  CHECK(calls == std::vector<std::string>{"log1", "stop?1", "log2", "stop?2", "log3", "stop?3"});
  CHECK(trainer.steps_done() == 3);
  CHECK(trainer.train(2, 16, logger, counter).size() == 2);
  CHECK(counted == 5);
}

TEST_CASE("CFMTrainer's state: the counters and generator under 'trainer', checked on load", "[train][state]") {
  const GaussianConditionalPath path(GaussianMixture::symmetric_2D(4, 0.5, 3.0), LinearAlpha{}, LinearBeta{});
  MLPVectorField<float> model(2, {8}, 1);
  Adam<float> adam(1e-3);
  TrainerOptions options;
  options.on_non_finite = NonFinitePolicy::SkipBatch;
  options.max_grad_norm = 1e-3;
  CFMTrainer trainer(path, model, adam, 5, options);
  trainer.train(7, 16);
  StateDict dict;
  save_state_parts(dict, state_part("trainer", trainer.counters()));
  CHECK(*dict.find_attribute("trainer.steps_done") == "7");
  CHECK(*dict.find_attribute("trainer.clipped_steps") == "7");
  CHECK(*dict.find_attribute("trainer.skipped_steps") == "0");
  const Tensor* rng = dict.find_tensor("trainer.rng");
  REQUIRE(rng != nullptr);
  CHECK(rng->dtype == DType::U64);
  CHECK(rng->shape == std::vector<std::int64_t>{4});
  // The composite lists model, optimizer and trainer, in that order.
  std::vector<std::string> names;
  std::apply([&](const auto&... p) { (names.push_back(p.name), ...); }, trainer.state_parts());
  CHECK(names == std::vector<std::string>{"model", "optimizer", "trainer"});

  // Restored into another trainer: the same next batch.
  CFMTrainer other(path, model, adam, 99, options);
  load_state_parts(dict, "mem", state_part("trainer", other.counters()));
  CHECK(other.steps_done() == 7);
  CHECK(other.clipped_steps() == 7);
  CHECK(other.rng() == trainer.rng());

  // Refused: negative or inconsistent counts, the all-zero generator, a missing key; nothing changes.
  const auto refused = [&](const char* key, const std::string& value, const char* message) {
    StateDict bad;
    for (const auto& [k, v] : dict.attributes()) bad.put_attribute(k, k == key ? value : v);
    for (const auto& [k, t] : dict.tensors()) bad.put_tensor(k, t);
    CFMTrainer fresh(path, model, adam, 11, options);
    const Rng before = fresh.rng();
    CHECK_THROWS_WITH(load_state_parts(bad, "bad", state_part("trainer", fresh.counters())), Catch::Contains(message));
    CHECK(fresh.steps_done() == 0);
    CHECK(fresh.rng() == before);
  };
  refused("trainer.steps_done", "-1", "steps_done = -1");
  refused("trainer.skipped_steps", "8", "skipped_steps = 8");
  refused("trainer.consecutive_skips", "1", "consecutive_skips = 1 > skipped_steps = 0");
  refused("trainer.clipped_steps", "x", "is not an integer");
  StateDict zero;
  for (const auto& [k, v] : dict.attributes()) zero.put_attribute(k, v);
  Tensor z = *rng;
  std::fill(z.bytes.begin(), z.bytes.end(), 0);
  zero.put_tensor("trainer.rng", z);
  CHECK_THROWS_WITH(load_state_parts(zero, "zero", state_part("trainer", other.counters())), Catch::Contains("all-zero"));
}

namespace {

// Trains `steps` steps, or 20, saves the whole trainer, restores it into fresh objects and trains
// the rest: the losses and parameters must be those of the straight run.
template <class MakeModel, class MakeOpt, class Path>
void check_resume(const Path& path, MakeModel make_model, MakeOpt make_opt, const TrainerOptions& options) {
  auto straight_model = make_model(1);
  auto straight_opt = make_opt();
  CFMTrainer straight(path, straight_model, straight_opt, 5, options);
  const std::vector<double> all = straight.train(40, 32);

  auto first_model = make_model(1);
  auto first_opt = make_opt();
  CFMTrainer first(path, first_model, first_opt, 5, options);
  std::vector<double> resumed = first.train(20, 32);
  StateDict dict;
  save_state_parts(dict, first);

  auto second_model = make_model(2);  // other initial weights, another seed: all overwritten by the load
  auto second_opt = make_opt();
  CFMTrainer second(path, second_model, second_opt, 77, options);
  load_state_parts(dict, "mem", second);
  CHECK(second.steps_done() == 20);
  const std::vector<double> rest = second.train(20, 32);
  resumed.insert(resumed.end(), rest.begin(), rest.end());
  CHECK(resumed == all);
  CHECK(second_model.parameters() == straight_model.parameters());
  CHECK(second.rng() == straight.rng());
  CHECK(second.steps_done() == 40);
}

}  // namespace

TEST_CASE("Resume: 20 steps, save, restore into fresh objects, 20 more == 40 straight (Stateful doubles)", "[train][state][resume]") {
  TrainerOptions options;
  options.condition_dropout = 0.2;
  SECTION("vector-conditioned model") {
    const VectorPath path(mean_is_condition(200, 6));
    check_resume(
        path, [](std::uint64_t seed) { return ParamsState<ConditionalVectorField<double>>(2, ConditionKind::Vector, 2, std::vector<Index>{12}, seed, 2); },
        [] { return MomentumSGD{}; }, options);
  }
  SECTION("unconditional model") {
    const GaussianConditionalPath path(GaussianMixture::symmetric_2D(4, 0.5, 3.0), LinearAlpha{}, LinearBeta{});
    check_resume(
        path, [](std::uint64_t seed) { return ParamsState<MLPVectorField<double>>(2, std::vector<Index>{12}, seed); },
        [] { return MomentumSGD{}; }, TrainerOptions{});
  }
}

TEST_CASE("Resume with the library's own model and optimizer state: 20 + 20 == 40", "[train][state][resume]") {
  // Needs MLPVectorField's and Adam's save_state/load_state (the state protocol for models and
  // optimizers); compiled either way, run once they are there.
  if constexpr (Stateful<MLPVectorField<float>> && Stateful<Adam<float>>) {
    TrainerOptions options;
    options.condition_dropout = 0.2;
    const VectorPath path(mean_is_condition(200, 6));
    check_resume(
        path, [](std::uint64_t seed) { return ConditionalVectorField<float>(2, ConditionKind::Vector, 2, std::vector<Index>{12}, seed, 2); },
        [] { return Adam<float>(1e-2); }, options);
    const GaussianConditionalPath mixture(GaussianMixture::symmetric_2D(4, 0.5, 3.0), LinearAlpha{}, LinearBeta{});
    check_resume(
        mixture, [](std::uint64_t seed) { return MLPVectorField<float>(2, std::vector<Index>{12}, seed); },
        [] { return Adam<float>(1e-2); }, TrainerOptions{});
  } else {
    WARN("MLPVectorField or Adam has no save_state yet: the resume test with the library's own state is skipped");
  }
}

namespace {

// A conditional model without the fused loss: the trainer runs forward_train, then backward.
struct UnfusedConditional {
  using Scalar = double;
  using Workspace = ConditionalVectorField<double>::Workspace;
  ConditionalVectorField<double> inner{2, ConditionKind::Vector, 2, {12}, 3, 1};
  Index dim() const { return inner.dim(); }
  ConditionKind condition_kind() const { return inner.condition_kind(); }
  Index condition_dim() const { return inner.condition_dim(); }
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<double>& c,
               const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    inner.forward(x, t, c, out, ws);
  }
  template <class DX, TimeArgument T>
  const Matrix<double>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<double>& c,
                                      Workspace& ws) const {
    return inner.forward_train(x, t, c, ws);
  }
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& g, Workspace& ws) {
    inner.backward(g, ws);
  }
  Vector<double>& parameters() { return inner.parameters(); }
  Vector<double>& gradients() { return inner.gradients(); }
};
static_assert(TrainableConditionalField<UnfusedConditional>);

}  // namespace

TEST_CASE("A conditional model without the fused loss trains the same (forward_train, then backward)", "[train][conditional]") {
  const VectorPath path(mean_is_condition(100, 2));
  TrainerOptions options;
  options.condition_dropout = 0.3;
  UnfusedConditional unfused;
  ConditionalVectorField<double> fused = unfused.inner;
  SGD<double> s1(0.05), s2(0.05);
  CFMTrainer a(path, unfused, s1, 4, options);
  CFMTrainer b(path, fused, s2, 4, options);
  const std::vector<double> la = a.train(5, 32), lb = b.train(5, 32);
  for (std::size_t k = 0; k < 5; ++k) CHECK(la[k] == Approx(lb[k]).epsilon(1e-12));
  CHECK((unfused.parameters() - fused.parameters()).cwiseAbs().maxCoeff() < 1e-12);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
