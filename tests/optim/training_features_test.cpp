// Training features as separate components: learning-rate schedules (values at chosen steps, the
// wrapper's effect on updates), the EMA of the weights against a hand-computed recurrence, and AdamW
// against PyTorch's formula.

#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <vector>

#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/adamw.hpp>
#include <flowmatch/optim/concepts.hpp>
#include <flowmatch/optim/ema.hpp>
#include <flowmatch/optim/lr_schedule.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

static_assert(Optimizer<AdamW<float>> && Optimizer<AdamW<double>>);
static_assert(Optimizer<ScheduledOptimizer<Adam<float>, WarmupCosineLR>>);
static_assert(Optimizer<ScheduledOptimizer<SGD<double>, ConstantLR>>);
static_assert(LearningRateSchedule<ConstantLR> && LearningRateSchedule<WarmupCosineLR>);
static_assert(!LearningRateSchedule<int>);

TEST_CASE("Warm-up cosine schedule: values at chosen steps", "[optim][lr]") {
  const WarmupCosineLR s(10, 110, 0.1);
  CHECK(s(0) == Approx(0.1));   // (0 + 1) / 10
  CHECK(s(4) == Approx(0.5));
  CHECK(s(9) == Approx(1.0));   // end of warm-up
  CHECK(s(10) == Approx(1.0));  // cosine starts at its top
  CHECK(s(35) == Approx(0.1 + 0.9 * 0.5 * (1.0 + std::cos(std::numbers::pi * 0.25))));
  CHECK(s(60) == Approx(0.55));  // half way: the mean of 1 and 0.1
  CHECK(s(109) == Approx(0.1 + 0.9 * 0.5 * (1.0 + std::cos(std::numbers::pi * 0.99))));
  CHECK(s(110) == 0.1);
  CHECK(s(1000) == 0.1);
  for (long long k = 10; k < 110; ++k) CHECK(s(k + 1) <= s(k));  // monotone after warm-up
  const WarmupCosineLR no_warmup(0, 4);
  CHECK(no_warmup(0) == 1.0);
  CHECK(no_warmup(2) == Approx(0.5));
  CHECK(no_warmup(4) == 0.0);
  CHECK(ConstantLR{}(123) == 1.0);
  CHECK_THROWS_AS(WarmupCosineLR(-1, 10), InvalidArgument);
  CHECK_THROWS_WITH(WarmupCosineLR(10, 10), Catch::Contains("'total_steps' = 10"));
  CHECK_THROWS_AS(WarmupCosineLR(1, 10, 1.5), InvalidArgument);
}

TEST_CASE("ScheduledOptimizer runs the wrapped optimizer at base_lr times the schedule", "[optim][lr]") {
  ScheduledOptimizer opt(SGD<double>(0.5), WarmupCosineLR(2, 4));
  CHECK(opt.base_learning_rate() == 0.5);
  Vector<double> p = Vector<double>::Zero(1), g = Vector<double>::Ones(1);
  const std::vector<double> factors{0.5, 1.0, 1.0, 0.5, 0.0, 0.0};
  double expected = 0.0;
  for (std::size_t k = 0; k < factors.size(); ++k) {
    INFO("update " << k);
    CHECK(opt.learning_rate() == Approx(0.5 * factors[k]));
    opt.step(p, g);
    expected -= 0.5 * factors[k];
    CHECK(p(0) == Approx(expected));
  }
  CHECK(opt.steps_taken() == 6);
  CHECK(opt.inner().steps_taken() == 4);  // factor 0: the update is skipped
  opt.set_learning_rate(2.0);
  CHECK(opt.base_learning_rate() == 2.0);
  CHECK_THROWS_AS(opt.set_learning_rate(0.0), InvalidArgument);
  opt.reset(1);
  CHECK(opt.steps_taken() == 0);
  CHECK(opt.learning_rate() == Approx(1.0));
}

TEST_CASE("ScheduledOptimizer, AdamW and the EMA compose with CFMTrainer", "[optim][lr][ema]") {
  const GaussianConditionalPath path(GaussianMixture::symmetric_2D(3, 0.5, 2.0), LinearAlpha{}, LinearBeta{});
  MLPVectorField<float> model(2, {16}, 1);
  ScheduledOptimizer opt(AdamW<float>(1e-2, 1e-3), WarmupCosineLR(5, 30));
  ExponentialMovingAverage<float> ema(0.9);
  CFMTrainer trainer(path, model, opt, 2);
  const std::vector<double> losses = trainer.train(30, 64, [&](const TrainProgress&) { ema.update(model.parameters()); });
  CHECK(losses.size() == 30);
  CHECK(ema.updates() == 30);
  CHECK(opt.inner().steps_taken() == 30);
  CHECK(opt.learning_rate() == 0.0);
  MLPVectorField<float> sampler = model;
  ema.copy_to(sampler.parameters());
  CHECK(sampler.parameters() == ema.average());
  CHECK(sampler.parameters() != model.parameters());
}

TEST_CASE("EMA equals the hand-computed average", "[optim][ema]") {
  ExponentialMovingAverage<double> ema(0.75);
  Vector<double> p(2);
  p << 1.0, -2.0;
  ema.update(p);  // avg = p
  CHECK(ema.average()(0) == 1.0);
  p << 3.0, 2.0;
  ema.update(p);  // 0.75 * (1, -2) + 0.25 * (3, 2) = (1.5, -1)
  CHECK(ema.average()(0) == Approx(1.5));
  CHECK(ema.average()(1) == Approx(-1.0));
  p << -1.0, 0.0;
  ema.update(p);  // 0.75 * (1.5, -1) + 0.25 * (-1, 0) = (0.875, -0.75)
  CHECK(ema.average()(0) == Approx(0.875));
  CHECK(ema.average()(1) == Approx(-0.75));
  CHECK(ema.updates() == 3);
  // A long run against the closed form: avg_k = d^(k-1) p_1 + sum_{i=2..k} (1 - d) d^(k-i) p_i.
  ExponentialMovingAverage<float> f(0.99);
  double closed = 0.0;
  const int k_max = 500;
  for (int i = 1; i <= k_max; ++i) {
    const double value = std::sin(0.1 * i);
    Vector<float> v = Vector<float>::Constant(3, static_cast<float>(value));
    f.update(v);
    closed = i == 1 ? value : 0.99 * closed + 0.01 * value;
  }
  CHECK(f.average()(2) == Approx(closed).margin(1e-5));
  Vector<float> out(3);
  f.copy_to(out);
  CHECK(out == f.average());
  Vector<float> wrong(4);
  CHECK_THROWS_AS(f.update(wrong), DimensionMismatch);
  CHECK_THROWS_AS(f.copy_to(wrong), DimensionMismatch);
  CHECK_THROWS_AS(ExponentialMovingAverage<float>(1.0), InvalidArgument);
  CHECK_THROWS_AS(ExponentialMovingAverage<float>(-0.1), InvalidArgument);
  ExponentialMovingAverage<float> fresh(0.5);
  CHECK_THROWS_WITH(fresh.copy_to(out), Catch::Contains("call update() first"));
}

TEST_CASE("AdamW matches PyTorch's formula", "[optim][adamw]") {
  const double lr = 0.1, wd = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  AdamW<double> opt(lr, wd, b1, b2, eps);
  Vector<double> p(3), ref(3), m = Vector<double>::Zero(3), v = Vector<double>::Zero(3);
  p << 1.0, -2.0, 0.5;
  ref = p;
  const std::vector<std::vector<double>> grads{{0.3, -0.1, 2.0}, {-0.5, 0.0, 1.0}, {0.1, 0.2, -3.0}, {0.0, 0.0, 0.0}};
  for (std::size_t k = 1; k <= grads.size(); ++k) {
    Vector<double> g(3);
    g << grads[k - 1][0], grads[k - 1][1], grads[k - 1][2];
    opt.step(p, g);
    // torch.optim.AdamW, single-tensor path: param.mul_(1 - lr * wd); exp_avg.lerp_(grad, 1 - b1);
    // exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2); step_size = lr / bc1;
    // denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps); param.addcdiv_(exp_avg, denom, value=-step_size)
    ref *= 1.0 - lr * wd;
    m = b1 * m + (1.0 - b1) * g;
    v = b2 * v + (1.0 - b2) * g.cwiseProduct(g);
    const double bc1 = 1.0 - std::pow(b1, double(k)), bc2 = 1.0 - std::pow(b2, double(k));
    ref.array() -= (lr / bc1) * m.array() / (v.array().sqrt() / std::sqrt(bc2) + eps);
    for (Index i = 0; i < 3; ++i) CHECK(p(i) == Approx(ref(i)).epsilon(1e-14));
  }
  CHECK(opt.steps_taken() == 4);
  CHECK(opt.weight_decay() == wd);
  // Weight decay 0 is Adam.
  AdamW<float> w0(1e-3, 0.0);
  Adam<float> a;
  Vector<float> pw = Vector<float>::LinSpaced(5, -1.0f, 1.0f), pa = pw, g = Vector<float>::Constant(5, 0.3f);
  for (int k = 0; k < 3; ++k) {
    w0.step(pw, g);
    a.step(pa, g);
  }
  CHECK(pw == pa);
  // Zero gradients: only the decay acts, p (1 - lr wd)^k.
  AdamW<double> decay_only(0.5, 0.1);
  Vector<double> q = Vector<double>::Ones(2), zero = Vector<double>::Zero(2);
  for (int k = 0; k < 5; ++k) decay_only.step(q, zero);
  CHECK(q(0) == Approx(std::pow(0.95, 5)));
  CHECK_THROWS_AS(AdamW<float>(1e-3, -0.1), InvalidArgument);
  Vector<double> wrong(3);
  CHECK_THROWS_AS(decay_only.step(q, wrong), DimensionMismatch);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
