// The alpha / beta schedules: endpoints, derivatives against central differences, the concepts,
// and GaussianConditionalPath's endpoint check with user-defined schedules.

#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <string>

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/concepts.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// User schedules: the cosine path alpha = sin(pi t / 2), beta = cos(pi t / 2).
struct CosineAlpha {
  double value(double t) const { return std::sin(0.5 * std::numbers::pi * t); }
  double derivative(double t) const { return 0.5 * std::numbers::pi * std::cos(0.5 * std::numbers::pi * t); }
};
struct CosineBeta {
  double value(double t) const { return std::cos(0.5 * std::numbers::pi * t); }
  double derivative(double t) const { return -0.5 * std::numbers::pi * std::sin(0.5 * std::numbers::pi * t); }
};
// Wrong endpoints.
struct DoubleAlpha {  // alpha_1 = 2
  double value(double t) const { return 2.0 * t; }
  double derivative(double) const { return 2.0; }
};
struct OffsetAlpha {  // alpha_0 = 0.1
  double value(double t) const { return 0.1 + 0.9 * t; }
  double derivative(double) const { return 0.9; }
};
struct HalfBeta {  // beta_1 = 0.5
  double value(double t) const { return 1.0 - 0.5 * t; }
  double derivative(double) const { return -0.5; }
};
struct ScaledBeta {  // beta_0 = 2
  double value(double t) const { return 2.0 * (1.0 - t); }
  double derivative(double) const { return -2.0; }
};
// Not schedules.
struct NoDerivative {
  double value(double t) const { return t; }
};
struct NoValue {
  double derivative(double) const { return 1.0; }
};
struct StringDerivative {
  double value(double t) const { return t; }
  std::string derivative(double) const { return "1"; }
};
struct NonConstValue {
  double value(double t) { return t; }
  double derivative(double) const { return 1.0; }
};

double central_difference(const auto& s, double t, double h = 1e-6) {
  return (s.value(t + h) - s.value(t - h)) / (2.0 * h);
}

}  // namespace

static_assert(Schedule<LinearAlpha> && AlphaSchedule<LinearAlpha> && BetaSchedule<LinearAlpha>);
static_assert(BetaSchedule<SquareRootBeta>);
static_assert(BetaSchedule<LinearBeta>);
static_assert(AlphaSchedule<CosineAlpha> && BetaSchedule<CosineBeta>);
static_assert(!AlphaSchedule<NoDerivative> && !BetaSchedule<NoDerivative> && !Schedule<NoDerivative>);
static_assert(!AlphaSchedule<NoValue>);
static_assert(!BetaSchedule<StringDerivative>);
static_assert(!Schedule<NonConstValue>);
static_assert(!Schedule<int>);

TEST_CASE("Schedules hit their endpoints exactly", "[schedule]") {
  CHECK(LinearAlpha{}.value(0.0) == 0.0);
  CHECK(LinearAlpha{}.value(1.0) == 1.0);
  CHECK(SquareRootBeta{}.value(0.0) == 1.0);
  CHECK(SquareRootBeta{}.value(1.0) == 0.0);
  CHECK(LinearBeta{}.value(0.0) == 1.0);
  CHECK(LinearBeta{}.value(1.0) == 0.0);
  // operator() is value().
  CHECK(LinearAlpha{}(0.3) == 0.3);
  CHECK(SquareRootBeta{}(0.75) == 0.5);
  CHECK(LinearBeta{}(0.25) == 0.75);
}

TEST_CASE("Schedules have their closed forms", "[schedule]") {
  for (int i = 0; i <= 100; ++i) {
    const double t = i / 100.0;
    CHECK(LinearAlpha{}.value(t) == t);
    CHECK(LinearAlpha{}.derivative(t) == 1.0);
    CHECK(LinearBeta{}.value(t) == Approx(1.0 - t).margin(1e-15));
    CHECK(LinearBeta{}.derivative(t) == -1.0);
    CHECK(SquareRootBeta{}.value(t) == Approx(std::sqrt(1.0 - t)).margin(1e-15));
    if (i < 100) CHECK(SquareRootBeta{}.derivative(t) == Approx(-0.5 / std::sqrt(1.0 - t)).epsilon(1e-14));
  }
  // Exact (no reference-implementation-style 1e-4 in the denominator), and -infinity at t = 1.
  CHECK(SquareRootBeta{}.derivative(0.0) == -0.5);
  CHECK(SquareRootBeta{}.derivative(0.75) == -1.0);
  CHECK(SquareRootBeta{}.derivative(1.0 - 0x1.0p-24) == Approx(-2048.0).epsilon(1e-12));
  CHECK(std::isinf(SquareRootBeta{}.derivative(1.0)));
  CHECK(SquareRootBeta{}.derivative(1.0) < 0.0);
}

TEST_CASE("derivative() equals a central difference of value()", "[schedule]") {
  // h = 1e-6: truncation h^2 |f'''| / 6 and rounding 1e-16 / h stay below 1e-8 relative for
  // t <= 0.99 (SquareRootBeta's f''' grows like (1 - t)^-2.5: 4e4 at t = 0.99 -> 7e-9 abs).
  for (int i = 1; i < 200; ++i) {
    const double t = i / 200.0;
    INFO("t = " << t);
    CHECK(LinearAlpha{}.derivative(t) == Approx(central_difference(LinearAlpha{}, t)).epsilon(1e-8));
    CHECK(LinearBeta{}.derivative(t) == Approx(central_difference(LinearBeta{}, t)).epsilon(1e-8));
    CHECK(CosineAlpha{}.derivative(t) == Approx(central_difference(CosineAlpha{}, t)).epsilon(1e-8).margin(1e-9));
    CHECK(CosineBeta{}.derivative(t) == Approx(central_difference(CosineBeta{}, t)).epsilon(1e-8).margin(1e-9));
    if (t <= 0.99)
      CHECK(SquareRootBeta{}.derivative(t) == Approx(central_difference(SquareRootBeta{}, t)).epsilon(1e-8));
  }
}

TEST_CASE("GaussianConditionalPath refuses schedules with wrong endpoints, naming the endpoint", "[schedule][path][errors]") {
  const Gaussian p = Gaussian::standard(2);
  using G = Gaussian;
  CHECK_THROWS_AS((GaussianConditionalPath<DoubleAlpha, LinearBeta, G>(p)), InvalidArgument);
  CHECK_THROWS_WITH((GaussianConditionalPath<DoubleAlpha, LinearBeta, G>(p)), Catch::Contains("'alpha.value(1)'"));
  CHECK_THROWS_WITH((GaussianConditionalPath<OffsetAlpha, LinearBeta, G>(p)), Catch::Contains("'alpha.value(0)'"));
  CHECK_THROWS_WITH((GaussianConditionalPath<LinearAlpha, HalfBeta, G>(p)), Catch::Contains("'beta.value(1)'"));
  CHECK_THROWS_WITH((GaussianConditionalPath<LinearAlpha, ScaledBeta, G>(p)), Catch::Contains("'beta.value(0)'"));
  // The roles matter: a beta schedule in the alpha slot is refused.
  CHECK_THROWS_AS((GaussianConditionalPath<LinearBeta, LinearAlpha, G>(p)), InvalidArgument);
}

TEST_CASE("GaussianConditionalPath accepts and uses a user-defined cosine schedule", "[schedule][path]") {
  using Path = GaussianConditionalPath<CosineAlpha, CosineBeta, Gaussian>;
  const Path path(Gaussian::standard(2));  // cos(pi/2) = 6e-17: within the 1e-9 endpoint tolerance
  Matrix<double> z(2, 3), eps(2, 3), u(2, 3);
  z << 1.0, -2.0, 0.5, 3.0, 0.0, -1.0;
  eps << 0.3, 0.7, -1.1, -0.2, 2.0, 0.4;
  for (double t : {0.0, 0.2, 0.5, 0.9, 1.0}) {
    path.conditional_vector_field_from_noise(z, eps, t, u);
    const double da = 0.5 * std::numbers::pi * std::cos(0.5 * std::numbers::pi * t);
    const double db = -0.5 * std::numbers::pi * std::sin(0.5 * std::numbers::pi * t);
    const Matrix<double> expected = da * z + db * eps;
    CHECK(test::max_abs(u - expected) < 1e-14);
  }
  // sample_conditional_path draws eps column by column from the generator, so a copy of the
  // generator gives eps and the exact x = alpha_t z + beta_t eps of the cosine schedule.
  Rng r1(5), r2(5), r3(5);
  Matrix<double> x1(2, 3), x2(2, 3), e(2, 3);
  path.sample_conditional_path(z, 0.3, r1, x1);
  path.sample_conditional_path(z, 0.6, r2, x2);
  r3.fill_normal(e);
  const Matrix<double> expected1 = std::sin(0.15 * std::numbers::pi) * z + std::cos(0.15 * std::numbers::pi) * e;
  const Matrix<double> expected2 = std::sin(0.3 * std::numbers::pi) * z + std::cos(0.3 * std::numbers::pi) * e;
  CHECK(test::max_abs(x1 - expected1) < 1e-14);
  CHECK(test::max_abs(x2 - expected2) < 1e-14);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
