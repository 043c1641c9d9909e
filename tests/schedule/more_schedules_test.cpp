// The library's extra schedules: cosine, polynomial, variance preserving and Lipman's OT path with
// sigma_min. Endpoints, closed forms, derivatives against central differences, bad parameters, and
// the path's endpoint check with schedules that declare an endpoint tolerance.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/concepts.hpp>
#include <flowmatch/schedule/cosine.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/lipman_ot_beta.hpp>
#include <flowmatch/schedule/polynomial.hpp>
#include <flowmatch/schedule/variance_preserving.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// Central difference with step h, kept inside [0, 1].
template <class S>
double numeric_derivative(const S& s, double t, double h = 1e-6) {
  const double lo = std::max(0.0, t - h), hi = std::min(1.0, t + h);
  return (s.value(hi) - s.value(lo)) / (hi - lo);
}

template <class S>
void check_derivative(const S& s, double t_max = 0.995) {
  for (int i = 1; i < 200; ++i) {
    const double t = i / 200.0;
    if (t > t_max) break;
    INFO("t = " << t);
    CHECK(s.derivative(t) == Approx(numeric_derivative(s, t)).epsilon(1e-6).margin(1e-7));
  }
}

}  // namespace

static_assert(AlphaSchedule<CosineAlpha> && BetaSchedule<CosineBeta>);
static_assert(AlphaSchedule<PolynomialAlpha> && BetaSchedule<PolynomialBeta>);
static_assert(AlphaSchedule<VariancePreservingAlpha> && BetaSchedule<VariancePreservingBeta>);
static_assert(BetaSchedule<LipmanOTBeta>);

TEST_CASE("Cosine schedule: endpoints exact and alpha^2 + beta^2 = 1", "[schedule]") {
  const CosineAlpha a;
  const CosineBeta b;
  CHECK(a.value(0.0) == 0.0);
  CHECK(a.value(1.0) == 1.0);
  CHECK(b.value(0.0) == 1.0);
  CHECK(b.value(1.0) == 0.0);  // exactly: evaluated as sin(pi (1 - t) / 2)
  for (int i = 0; i <= 50; ++i) {
    const double t = i / 50.0;
    CHECK(a.value(t) * a.value(t) + b.value(t) * b.value(t) == Approx(1.0).epsilon(1e-14));
    CHECK(b.value(t) == Approx(std::cos(0.5 * std::numbers::pi * t)).margin(1e-15));
  }
  CHECK(a.derivative(0.0) == Approx(0.5 * std::numbers::pi));
  CHECK(a.derivative(1.0) == Approx(0.0).margin(1e-15));
  CHECK(b.derivative(0.0) == 0.0);
  CHECK(b.derivative(1.0) == Approx(-0.5 * std::numbers::pi));
  check_derivative(a, 1.0);
  check_derivative(b, 1.0);
}

TEST_CASE("Polynomial schedule: t^n and 1 - t^n with their derivatives", "[schedule]") {
  for (double n : {0.5, 1.0, 2.0, 3.0, 4.5}) {
    INFO("n = " << n);
    const PolynomialAlpha a(n);
    const PolynomialBeta b(n);
    CHECK(a.degree() == n);
    CHECK(a.value(0.0) == 0.0);
    CHECK(a.value(1.0) == 1.0);
    CHECK(b.value(0.0) == 1.0);
    CHECK(b.value(1.0) == 0.0);
    CHECK(a.value(0.5) == Approx(std::pow(0.5, n)));
    CHECK(b.value(0.5) == Approx(1.0 - std::pow(0.5, n)));
    CHECK(a.derivative(1.0) == Approx(n));
    CHECK(b.derivative(1.0) == Approx(-n));
    check_derivative(a, 1.0);
    check_derivative(b, 1.0);
  }
  CHECK(PolynomialAlpha(2.0).derivative(0.0) == 0.0);
  CHECK(PolynomialAlpha(1.0).derivative(0.0) == 1.0);
  CHECK(std::isinf(PolynomialAlpha(0.5).derivative(0.0)));  // documented: n < 1 is infinite at t = 0
  CHECK(PolynomialAlpha().degree() == 2.0);
}

TEST_CASE("Polynomial schedule refuses a degree that is not > 0", "[schedule][errors]") {
  for (double n : {0.0, -1.0, -0.5, std::nan(""), std::numeric_limits<double>::infinity()}) {
    INFO("n = " << n);
    CHECK_THROWS_AS(PolynomialAlpha(n), InvalidArgument);
    CHECK_THROWS_AS(PolynomialBeta(n), InvalidArgument);
  }
  CHECK_THROWS_WITH(PolynomialAlpha(0.0), Catch::Contains("flowmatch::PolynomialAlpha") && Catch::Contains("'n (degree)' = 0"));
  CHECK_THROWS_WITH(PolynomialBeta(-2.0), Catch::Contains("flowmatch::PolynomialBeta") && Catch::Contains("= -2"));
}

TEST_CASE("Variance-preserving schedule matches Song et al.'s closed form", "[schedule]") {
  const double bmin = 0.1, bmax = 20.0;
  const VariancePreservingAlpha a(bmin, bmax);
  const VariancePreservingBeta b(bmin, bmax);
  CHECK(a.beta_min() == bmin);
  CHECK(b.beta_max() == bmax);
  // T(s) = bmin s + (bmax - bmin) s^2 / 2 in diffusion time s = 1 - t.
  const auto T = [&](double s) { return bmin * s + 0.5 * (bmax - bmin) * s * s; };
  for (int i = 0; i <= 40; ++i) {
    const double t = i / 40.0;
    CHECK(a.value(t) == Approx(std::exp(-0.5 * T(1.0 - t))).epsilon(1e-13));
    CHECK(b.value(t) == Approx(std::sqrt(1.0 - std::exp(-T(1.0 - t)))).epsilon(1e-12).margin(1e-15));
    CHECK(a.value(t) * a.value(t) + b.value(t) * b.value(t) == Approx(1.0).epsilon(1e-13));
  }
  // Endpoints: exact at t = 1, within exp(-T(1) / 2) = 0.0066 of N(0, I) at t = 0.
  CHECK(a.value(1.0) == 1.0);
  CHECK(b.value(1.0) == 0.0);
  CHECK(a.value(0.0) == Approx(std::exp(-0.5 * 10.05)));
  CHECK(a.endpoint_tolerance() == Approx(std::exp(-0.5 * 10.05)));
  CHECK(a.value(0.0) < 0.007);
  CHECK(1.0 - b.value(0.0) < a.endpoint_tolerance());
  check_derivative(a, 1.0);
  check_derivative(b, 0.99);
  CHECK(std::isinf(b.derivative(1.0)));
  CHECK(b.derivative(1.0) < 0.0);
  // beta_min = 0: beta_t ~ sqrt(beta_max / 2) (1 - t), a finite derivative at t = 1.
  const VariancePreservingBeta b0(0.0, 8.0);
  CHECK(b0.derivative(1.0) == Approx(-2.0));
  CHECK(b0.derivative(1.0 - 1e-6) == Approx(-2.0).epsilon(1e-5));
  check_derivative(b0, 1.0);
}

TEST_CASE("Variance-preserving schedule refuses bad rates", "[schedule][errors]") {
  CHECK_THROWS_AS(VariancePreservingAlpha(-0.1, 20.0), InvalidArgument);
  CHECK_THROWS_AS(VariancePreservingBeta(0.1, 0.05), InvalidArgument);
  CHECK_THROWS_AS(VariancePreservingBeta(0.0, 0.0), InvalidArgument);
  CHECK_THROWS_AS(VariancePreservingAlpha(0.1, std::numeric_limits<double>::infinity()), InvalidArgument);
  CHECK_THROWS_WITH(VariancePreservingAlpha(0.1, 0.05), Catch::Contains("'beta_max' = 0.05"));
}

TEST_CASE("Lipman OT schedule: beta = 1 - (1 - sigma_min) t", "[schedule]") {
  for (double sm : {0.0, 1e-4, 0.1, 0.5}) {
    const LipmanOTBeta b(sm);
    CHECK(b.sigma_min() == sm);
    CHECK(b.value(0.0) == 1.0);
    CHECK(b.value(1.0) == Approx(sm).margin(1e-16));
    CHECK(b.value(0.3) == Approx(1.0 - (1.0 - sm) * 0.3));
    CHECK(b.derivative(0.7) == -(1.0 - sm));
    check_derivative(b, 1.0);
  }
  CHECK(LipmanOTBeta().sigma_min() == 1e-4);
  for (double sm : {-0.1, 1.0, 1.5, std::nan("")}) {
    INFO("sigma_min = " << sm);
    CHECK_THROWS_AS(LipmanOTBeta(sm), InvalidArgument);
  }
  CHECK_THROWS_WITH(LipmanOTBeta(1.0), Catch::Contains("'sigma_min' = 1") && Catch::Contains("[0, 1)"));
}

TEST_CASE("The path accepts declared endpoint tolerances and the training target is exact", "[schedule][path]") {
  const Gaussian p = Gaussian::standard(2);
  // Without the declared tolerance these endpoints would be refused (beta_1 = 0.1, alpha_0 = 0.0066).
  const GaussianConditionalPath ot(p, LinearAlpha{}, LipmanOTBeta(0.1));
  const GaussianConditionalPath vp(p, VariancePreservingAlpha{}, VariancePreservingBeta{});
  const GaussianConditionalPath cos(p, CosineAlpha{}, CosineBeta{});
  const GaussianConditionalPath poly(p, PolynomialAlpha(3.0), PolynomialBeta(2.0));
  // Lipman's target: u = z - (1 - sigma_min) eps, x = t z + (1 - (1 - sigma_min) t) eps.
  Rng r1(3), r2(3);
  TrainingBatch<double> batch(2, 64);
  ot.sample_training_batch(r1, batch);
  Matrix<double> z(2, 64);
  p.sample(r2, z);
  for (Index j = 0; j < 64; ++j) {
    const double t = r2.uniform24();
    CHECK(batch.t(j) == t);
    for (Index i = 0; i < 2; ++i) {
      const double eps = r2.normal();
      CHECK(batch.x(i, j) == Approx(t * z(i, j) + (1.0 - 0.9 * t) * eps).margin(1e-14));
      CHECK(batch.u(i, j) == Approx(z(i, j) - 0.9 * eps).margin(1e-14));
    }
  }
  TrainingBatch<float> fb(2, 128);
  Rng r(1);
  vp.sample_training_batch(r, fb);
  cos.sample_training_batch(r, fb);
  poly.sample_training_batch(r, fb);
  CHECK(fb.u.allFinite());
}

}  // namespace FLOWMATCH_TEST_FILE_ID
