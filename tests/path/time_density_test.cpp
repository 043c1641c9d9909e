// Training-time densities (uniform, power, logit-normal, SD3's mode, Beta) and loss weights:
// draws against each density (histogram vs the integrated density), the densities' normalisation
// and moments, their argument checks, the trainer's weighted loss recomputed by hand, and the
// checkpoint's record of the density.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include <flowmatch/core/error.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/path/time_density.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// Integral of d.density over [a, b] by composite Simpson with m panels.
template <class D>
double integral(const D& d, double a, double b, int m = 400) {
  const double h = (b - a) / m;
  double s = d.density(a) + d.density(b);
  for (int k = 1; k < m; ++k) s += (k % 2 ? 4.0 : 2.0) * d.density(a + k * h);
  return s * h / 3.0;
}

// Draws n times and compares the fraction in each of 20 bins with the density's integral over the
// bin (the interior bins only: some densities are unbounded at the ends). A binomial fraction of
// 200000 draws has a standard error below 1.2e-3; the margin is 5e-3.
template <class D>
void check_draws_follow_density(const D& d, std::uint64_t seed) {
  Rng rng(seed);
  const int n = 200000, bins = 20;
  std::vector<double> count(bins, 0.0);
  double lo = 1.0, hi = 0.0;
  for (int k = 0; k < n; ++k) {
    const double t = d.sample(rng);
    lo = std::min(lo, t);
    hi = std::max(hi, t);
    count[static_cast<std::size_t>(std::min(bins - 1, static_cast<int>(t * bins)))] += 1.0;
  }
  CHECK(lo >= 0.0);
  CHECK(hi <= kMaxTrainingTime);
  for (int b = 1; b + 1 < bins; ++b) {
    INFO(d.describe() << " bin " << b);
    CHECK(count[static_cast<std::size_t>(b)] / n == Approx(integral(d, b / 20.0, (b + 1) / 20.0)).margin(5e-3));
  }
}

double sigmoid(double y) { return 1.0 / (1.0 + std::exp(-y)); }

}  // namespace

TEST_CASE("Logit-normal times: draws follow the density, the median is sigmoid(m)", "[path][time]") {
  for (const auto& [m, s] : std::vector<std::pair<double, double>>{{0.0, 1.0}, {-0.5, 1.0}, {0.8, 0.6}}) {
    const LogitNormalTime d(m, s);
    check_draws_follow_density(d, 3);
    CHECK(integral(d, 1e-9, 1.0 - 1e-9, 4000) == Approx(1.0).margin(1e-4));
    // P(t < sigmoid(m)) = 1/2.
    CHECK(integral(d, 1e-9, sigmoid(m), 4000) == Approx(0.5).margin(1e-4));
  }
  CHECK(LogitNormalTime(0.0, 1.0).density(0.5) == Approx(1.0 / std::sqrt(2.0 * std::numbers::pi) / 0.25));
  CHECK(LogitNormalTime().density(0.0) == 0.0);
  CHECK(LogitNormalTime().density(1.2) == 0.0);
  // Far tails are clamped into [0, 1 - 2^-24].
  Rng rng(1);
  const LogitNormalTime wide(0.0, 40.0);
  for (int k = 0; k < 10000; ++k) {
    const double t = wide.sample(rng);
    REQUIRE(t >= 0.0);
    REQUIRE(t <= kMaxTrainingTime);
  }
  CHECK_THROWS_AS(LogitNormalTime(0.0, 0.0), InvalidArgument);
  CHECK_THROWS_WITH(LogitNormalTime(0.0, -1.0), Catch::Contains("scale") && Catch::Contains("-1"));
  CHECK_THROWS_WITH(LogitNormalTime(std::nan(""), 1.0), Catch::Contains("location"));
  CHECK(LogitNormalTime(-0.5, 1.0).describe() == "logit_normal(location=-0.5, scale=1)");
}

TEST_CASE("Mode times (SD3): s = 0 is uniform, the map is monotone, draws follow the density", "[path][time]") {
  Rng r1(9), r2(9);
  for (int k = 0; k < 100; ++k) CHECK(ModeTime(0.0).sample(r1) == UniformTime{}.sample(r2));
  for (double s : {1.29, -0.8, ModeTime::kMaxScale}) {
    const ModeTime d(s);
    double prev = -1.0;
    for (int k = 0; k <= 1000; ++k) {
      const double t = d.map(k / 1000.0);
      REQUIRE(t >= prev);
      prev = t;
    }
    CHECK(d.map(0.0) == 0.0);
    CHECK(d.map(1.0) == Approx(1.0));
    if (s == ModeTime::kMaxScale) continue;  // there the density is unbounded at t = 1/2
    check_draws_follow_density(d, 4);
    // Symmetric about 1/2: half the mass on each side.
    CHECK(integral(d, 0.0, 0.5) == Approx(0.5).margin(1e-4));
  }
  // s > 0 concentrates the middle: more mass in [1/4, 3/4] than uniform.
  CHECK(integral(ModeTime(1.29), 0.25, 0.75) > 0.6);
  CHECK_THROWS_WITH(ModeTime(1.8), Catch::Contains("scale") && Catch::Contains("monotone"));
  CHECK_THROWS_AS(ModeTime(-1.5), InvalidArgument);
  CHECK(ModeTime().describe() == "mode(scale=1.29)");
}

TEST_CASE("Beta times: draws follow the density, mean a / (a + b)", "[path][time]") {
  for (const auto& [a, b] : std::vector<std::pair<double, double>>{{2.0, 2.0}, {0.7, 1.5}, {3.0, 1.0}}) {
    const BetaTime d(a, b);
    check_draws_follow_density(d, 5);
    Rng rng(6);
    double sum = 0.0;
    const int n = 100000;
    for (int k = 0; k < n; ++k) sum += d.sample(rng);
    CHECK(sum / n == Approx(a / (a + b)).margin(4e-3));
  }
  CHECK(BetaTime(2.0, 2.0).density(0.5) == Approx(1.5));
  CHECK(BetaTime(1.0, 1.0).density(0.3) == Approx(1.0));
  CHECK(std::isinf(BetaTime(0.5, 2.0).density(0.0)));
  CHECK_THROWS_WITH(BetaTime(0.0, 1.0), Catch::Contains("a") && Catch::Contains("> 0"));
  CHECK_THROWS_AS(BetaTime(1.0, std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK(BetaTime(2.0, 0.5).describe() == "beta(a=2, b=0.5)");
}

namespace {

using LinearPath = GaussianConditionalPath<LinearAlpha, LinearBeta, GaussianMixture>;
template <class Time>
using TimedPath = GaussianConditionalPath<LinearAlpha, LinearBeta, GaussianMixture, StandardNormal,
                                          IndependentCoupling, Time>;
using ConstantWeight = double (*)(double);

template <class Time>
TimedPath<Time> timed_path(Time time) {
  return TimedPath<Time>(GaussianMixture::symmetric_2D(3, 0.5, 2.0), LinearAlpha{}, LinearBeta{}, StandardNormal(2),
                         IndependentCoupling{}, std::move(time));
}

}  // namespace

TEST_CASE("Weighted times: the trainer minimises sum_j w(t_j) |r_j|^2 / (n d)", "[path][time][train]") {
  using Model = MLPVectorField<double>;
  const auto weight = [](double t) { return 1.0 + 3.0 * t * t; };
  using Weighted = WeightedTime<UniformTime, decltype(weight)>;
  const Weighted time(UniformTime{}, weight, "1+3t^2");
  CHECK(time.describe() == "uniform weighted by 1+3t^2");

  Model weighted_model(2, {16}, 7), plain_model(2, {16}, 7);
  SGD<double> sgd1(0.1), sgd2(0.1);
  CFMTrainer weighted(timed_path(time), weighted_model, sgd1, 11);
  CFMTrainer plain(timed_path(UniformTime{}), plain_model, sgd2, 11);
  const double lw = weighted.loss_and_gradient(64, weighted.rng());
  const double lp = plain.loss_and_gradient(64, plain.rng());
  // Same draws (the weight draws nothing): same batch.
  const auto& b = weighted.last_batch();
  REQUIRE(b.weight.size() == 64);
  CHECK(plain.last_batch().weight.size() == 0);
  REQUIRE((b.x - plain.last_batch().x).norm() == 0.0);
  // Recompute the weighted loss and its gradient by central differences on a few parameters.
  const auto loss_at = [&](const Model& m) {
    const Matrix<double> r = m(b.x, b.t) - b.u;
    double s = 0.0;
    for (Index j = 0; j < r.cols(); ++j) s += weight(b.t(j)) * r.col(j).squaredNorm();
    return s / static_cast<double>(r.size());
  };
  CHECK(lw == Approx(loss_at(weighted_model)).epsilon(1e-12));
  CHECK(lp == Approx((plain_model(b.x, b.t) - b.u).squaredNorm() / static_cast<double>(b.u.size())).epsilon(1e-12));
  CHECK(lw > lp);  // every weight is >= 1
  Model probe = weighted_model;
  for (Index k : {Index(0), Index(17), Index(40), probe.parameters().size() - 1}) {
    const double h = 1e-6, p0 = probe.parameters()(k);
    probe.parameters()(k) = p0 + h;
    const double up = loss_at(probe);
    probe.parameters()(k) = p0 - h;
    const double down = loss_at(probe);
    probe.parameters()(k) = p0;
    INFO("parameter " << k);
    CHECK(weighted_model.gradients()(k) == Approx((up - down) / (2 * h)).epsilon(1e-6).margin(1e-9));
  }
  // A weight that is not finite is named with its time.
  const auto bad = [](double t) { return t > 0.5 ? std::nan("") : 1.0; };
  Model m3(2, {16}, 7);
  SGD<double> sgd3(0.1);
  CFMTrainer broken(timed_path(WeightedTime<UniformTime, decltype(bad)>(UniformTime{}, bad, "bad")), m3, sgd3, 1);
  CHECK_THROWS_WITH(broken.step(64), Catch::Contains("'bad'") && Catch::Contains("at t = "));
}

TEST_CASE("Weighted times: weight 1 is the plain (fused) loss and update; weight 2 doubles both", "[path][time][train]") {
  using Model = MLPVectorField<float>;
  const auto one = [](double) { return 1.0; };
  const auto two = [](double) { return 2.0; };
  Model m1(2, {32}, 3), m2(2, {32}, 3), m0(2, {32}, 3);
  SGD<float> s1(0.05), s2(0.05), s0(0.05);
  CFMTrainer t1(timed_path(WeightedTime<UniformTime, decltype(one)>(UniformTime{}, one, "one")), m1, s1, 5);
  CFMTrainer t2(timed_path(WeightedTime<UniformTime, decltype(two)>(UniformTime{}, two, "two")), m2, s2, 5);
  CFMTrainer t0(timed_path(UniformTime{}), m0, s0, 5);
  const double l1 = t1.loss_and_gradient(100, t1.rng()), l2 = t2.loss_and_gradient(100, t2.rng()),
               l0 = t0.loss_and_gradient(100, t0.rng());
  CHECK(l1 == Approx(l0).epsilon(1e-5));
  CHECK(l2 == Approx(2 * l0).epsilon(1e-5));
  const Vector<float> g0 = m0.gradients();
  CHECK((m1.gradients() - g0).norm() <= 1e-4f * g0.norm());
  CHECK((m2.gradients() - 2.0f * g0).norm() <= 2e-4f * g0.norm());
}

TEST_CASE("Checkpoints record the time density and refuse to resume with another", "[path][time][train][io]") {
  using Model = MLPVectorField<float>;
  const std::filesystem::path file = std::filesystem::temp_directory_path() / "flowmatch_time_density_test.fmck";
  Model m(2, {8}, 1);
  SGD<float> sgd(0.1);
  CFMTrainer trainer(timed_path(LogitNormalTime(0.0, 1.0)), m, sgd, 2);
  CHECK(trainer.counters().time_density == "logit_normal(location=0, scale=1)");
  trainer.train(3, 16);
  std::apply([&](const auto&... parts) { save_checkpoint(file, parts...); }, trainer.state_parts());
  const StateDict dict = read_checkpoint(file);
  CHECK(StateReader(dict, "file", "trainer.").text("time_density") == "logit_normal(location=0, scale=1)");

  // The same density resumes.
  Model m_same(2, {8}, 9);
  SGD<float> sgd_same(0.1);
  CFMTrainer same(timed_path(LogitNormalTime(0.0, 1.0)), m_same, sgd_same, 4);
  std::apply([&](auto&&... parts) { load_checkpoint(file, parts...); }, same.state_parts());
  CHECK(same.steps_done() == 3);
  // Another one is refused, naming both.
  Model m_other(2, {8}, 9);
  SGD<float> sgd_other(0.1);
  CFMTrainer other(timed_path(UniformTime{}), m_other, sgd_other, 4);
  CHECK_THROWS_AS(std::apply([&](auto&&... parts) { load_checkpoint(file, parts...); }, other.state_parts()),
                  CheckpointMismatchError);
  CHECK_THROWS_WITH(std::apply([&](auto&&... parts) { load_checkpoint(file, parts...); }, other.state_parts()),
                    Catch::Contains("logit_normal(location=0, scale=1)") && Catch::Contains("'uniform'"));
  CHECK(other.steps_done() == 0);
  std::filesystem::remove(file);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
