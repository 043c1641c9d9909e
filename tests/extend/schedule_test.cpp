// docs/extending.md, "A schedule": a user's own alpha/beta schedule, written outside the library
// (between the [extending.md] markers; the page quotes parts of this file, and
// tests/extend/docs_sync_test.cpp fails if a quote no longer matches). It satisfies AlphaSchedule
// and BetaSchedule, GaussianConditionalPath accepts it, and CFMTrainer trains with it.
//
// What the tests prove: exact endpoints; derivative() agrees with central differences of value();
// the path's training batches are built from this schedule (u = alpha'_t z + beta'_t eps for the
// eps that x = alpha_t z + beta_t eps implies); a schedule that misses an endpoint is refused at
// construction; a short training run has finite, falling losses and its samples land near the data.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

// [extending.md: schedule]
#include <flowmatch/schedule/concepts.hpp>

namespace user {

// alpha_t = 3t^2 - 2t^3 (smoothstep): leaves the noise and reaches the data with zero speed.
struct SmoothstepAlpha {
  double value(double t) const { return t * t * (3.0 - 2.0 * t); }
  double derivative(double t) const { return 6.0 * t * (1.0 - t); }
};

// beta_t = 1 - alpha_t, written as (1 - t)^2 (1 + 2t) so that beta_1 is exactly 0.
struct SmoothstepBeta {
  double value(double t) const { return (1.0 - t) * (1.0 - t) * (1.0 + 2.0 * t); }
  double derivative(double t) const { return -6.0 * t * (1.0 - t); }
};

static_assert(flowmatch::AlphaSchedule<SmoothstepAlpha> && flowmatch::BetaSchedule<SmoothstepBeta>);

}  // namespace user
// [end]

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// Misses alpha_1 = 1 by 0.1: the path must refuse it.
struct ShortAlpha {
  double value(double t) const { return 0.9 * t; }
  double derivative(double) const { return 0.9; }
};

template <class S>
double central_difference(const S& s, double t, double h = 1e-6) {
  return (s.value(t + h) - s.value(t - h)) / (2.0 * h);
}

Gaussian toy_data() { return Gaussian(Vector<double>{{3.0, -2.0}}, Vector<double>{{0.5, 0.5}}); }

}  // namespace

TEST_CASE("extend/schedule: smoothstep endpoints are exact and beta = 1 - alpha", "[extend][schedule]") {
  const user::SmoothstepAlpha a;
  const user::SmoothstepBeta b;
  CHECK(a.value(0.0) == 0.0);
  CHECK(a.value(1.0) == 1.0);
  CHECK(b.value(0.0) == 1.0);
  CHECK(b.value(1.0) == 0.0);
  for (int i = 0; i <= 64; ++i) {
    const double t = i / 64.0;
    CHECK(a.value(t) + b.value(t) == Approx(1.0).epsilon(1e-15));
    CHECK(a.derivative(t) + b.derivative(t) == 0.0);
  }
}

TEST_CASE("extend/schedule: derivative() matches central differences of value()", "[extend][schedule]") {
  const user::SmoothstepAlpha a;
  const user::SmoothstepBeta b;
  // Error of the difference: h^2 |f'''| / 6 = 2e-12 (f''' = -12) plus rounding 1e-16 / h = 1e-10.
  for (int i = 1; i < 100; ++i) {
    const double t = i / 100.0;
    INFO("t = " << t);
    CHECK(std::abs(a.derivative(t) - central_difference(a, t)) < 1e-8);
    CHECK(std::abs(b.derivative(t) - central_difference(b, t)) < 1e-8);
  }
}

TEST_CASE("extend/schedule: GaussianConditionalPath builds its training batches from the schedule",
          "[extend][schedule]") {
  GaussianConditionalPath path(toy_data(), user::SmoothstepAlpha{}, user::SmoothstepBeta{});
  Rng rng(5);
  TrainingBatch<double> batch(2, 200);
  path.sample_training_batch(rng, batch);
  const user::SmoothstepAlpha a;
  const user::SmoothstepBeta b;
  Index checked = 0;
  for (Index j = 0; j < batch.size(); ++j) {
    const double t = batch.t(j);
    if (b.value(t) < 1e-3) continue;  // eps = (x - alpha z) / beta loses digits as beta -> 0
    for (Index i = 0; i < 2; ++i) {
      const double eps = (batch.x(i, j) - a.value(t) * batch.z(i, j)) / b.value(t);
      CHECK(batch.u(i, j) == Approx(a.derivative(t) * batch.z(i, j) + b.derivative(t) * eps).margin(1e-9));
    }
    ++checked;
  }
  CHECK(checked > 150);

  // The endpoint check applies to user schedules too.
  CHECK_THROWS_AS(GaussianConditionalPath(toy_data(), ShortAlpha{}, user::SmoothstepBeta{}), InvalidArgument);
}

TEST_CASE("extend/schedule: CFMTrainer trains with the smoothstep path and the flow reaches the data",
          "[extend][schedule]") {
  GaussianConditionalPath path(toy_data(), user::SmoothstepAlpha{}, user::SmoothstepBeta{});
  MLPVectorField<float, SiLU> model(2, {32, 32}, 1);
  Adam<float> adam(1e-2);
  CFMTrainer trainer(path, model, adam, 2);
  const std::vector<double> losses = trainer.train(1000, 32);
  double first = 0.0, last = 0.0;
  for (int k = 0; k < 20; ++k) {
    first += losses[static_cast<std::size_t>(k)] / 20.0;
    last += losses[losses.size() - 1 - static_cast<std::size_t>(k)] / 20.0;
  }
  for (double l : losses) REQUIRE(std::isfinite(l));
  INFO("mean loss of the first 20 steps " << first << ", of the last 20 " << last);
  CHECK(last < 0.5 * first);

  Rng rng(3);
  Matrix<float> x0 = Gaussian::standard(2).sample<float>(256, rng);
  LearnedVectorFieldODE ode(model);
  EulerSimulator simulator(ode);
  const Matrix<float> x1 = simulator.simulate(x0, 50);
  const Vector<double> mean = x1.cast<double>().rowwise().mean();
  INFO("sample mean " << mean.transpose());
  CHECK(std::abs(mean(0) - 3.0) < 0.3);
  CHECK(std::abs(mean(1) + 2.0) < 0.3);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
