// flowmatch::Gaussian: the closed-form log-density, sample moments, and argument checks.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>

#include <flowmatch/distribution/concepts.hpp>
#include <flowmatch/distribution/gaussian.hpp>

#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using test::kSigmas;

static_assert(SampleableDistribution<Gaussian>);
static_assert(DensityDistribution<Gaussian>);

namespace {

Vector<double> vec(std::initializer_list<double> v) {
  Vector<double> out(static_cast<Index>(v.size()));
  Index i = 0;
  for (double x : v) out(i++) = x;
  return out;
}

}  // namespace

TEST_CASE("Gaussian::log_density equals the closed form", "[distribution][gaussian]") {
  const Vector<double> mean = vec({1.0, -2.0, 0.5});
  const Vector<double> sd = vec({0.5, 2.0, 1.5});
  const Gaussian g(mean, sd);
  CHECK(g.dim() == 3);
  CHECK(g.mean() == mean);
  CHECK(g.std() == sd);

  Rng rng(1);
  Matrix<double> x(3, 50);
  rng.fill_normal(x);
  x *= 3.0;
  const Vector<double> lp = g.log_density(x);
  REQUIRE(lp.size() == 50);
  for (Index j = 0; j < x.cols(); ++j) {
    double expected = 0.0;
    for (Index i = 0; i < 3; ++i) {
      // log N(x; m, s^2) = -(x - m)^2 / (2 s^2) - log(s) - log(2 pi) / 2
      const double u = (x(i, j) - mean(i)) / sd(i);
      expected += -0.5 * u * u - std::log(sd(i)) - 0.5 * std::log(2.0 * std::numbers::pi);
    }
    CHECK(lp(j) == Approx(expected).epsilon(1e-13));
  }
  // At the mean: the normalising constant alone.
  Matrix<double> at_mean = mean;
  CHECK(g.log_density(at_mean)(0) ==
        Approx(-std::log(0.5 * 2.0 * 1.5) - 1.5 * std::log(2.0 * std::numbers::pi)).epsilon(1e-14));

  // Float input and a float output vector, writing into a segment.
  const Matrix<float> xf = x.cast<float>();
  Vector<float> outf = Vector<float>::Zero(60);
  g.log_density(xf, outf.segment(5, 50));
  for (Index j = 0; j < 50; ++j)
    CHECK(outf(5 + j) == Approx(g.log_density(xf.cast<double>())(j)).epsilon(1e-6));
  CHECK(outf(0) == 0.0f);
  CHECK(outf(59) == 0.0f);

  // standard(): N(0, std^2 I).
  const Gaussian s = Gaussian::standard(2, 3.0);
  CHECK(s.mean() == Vector<double>::Zero(2));
  CHECK(s.std() == Vector<double>::Constant(2, 3.0));
  Matrix<double> p(2, 1);
  p << 3.0, -3.0;
  CHECK(s.log_density(p)(0) == Approx(-1.0 - 2.0 * std::log(3.0) - std::log(2.0 * std::numbers::pi)).epsilon(1e-14));
}

TEMPLATE_TEST_CASE("Gaussian samples have the right mean and std", "[distribution][gaussian][statistical]", float, double) {
  const Vector<double> mean = vec({3.0, -1.0});
  const Vector<double> sd = vec({0.5, 2.0});
  const Gaussian g(mean, sd);
  Rng rng(2);
  constexpr Index n = 200'000;
  const Matrix<TestType> x = g.template sample<TestType>(n, rng);
  REQUIRE(x.rows() == 2);
  REQUIRE(x.cols() == n);
  for (Index i = 0; i < 2; ++i) {
    const test::Moments m = test::row_moments(x, i);
    // Standard errors: mean s / sqrt(n), std s / sqrt(2n).
    CHECK(std::abs(m.mean - mean(i)) < kSigmas * sd(i) / std::sqrt(double(n)));
    CHECK(std::abs(std::sqrt(m.variance) - sd(i)) < kSigmas * sd(i) / std::sqrt(2.0 * n));
  }
  // The coordinates are independent.
  const test::Moments m0 = test::row_moments(x, 0), m1 = test::row_moments(x, 1);
  double cov = 0.0;
  for (Index j = 0; j < n; ++j) cov += (double(x(0, j)) - m0.mean) * (double(x(1, j)) - m1.mean);
  cov /= double(n);
  CHECK(std::abs(cov / (sd(0) * sd(1))) < kSigmas / std::sqrt(double(n)));
}

TEST_CASE("Gaussian::sample: float and double draw the same values and blocks are filled in place", "[distribution][gaussian]") {
  const Gaussian g(vec({1.0, 2.0, 3.0}), vec({0.1, 1.0, 10.0}));
  Rng a(9), b(9), c(9);
  const Matrix<float> xf = g.sample<float>(20, a);
  const Matrix<double> xd = g.sample<double>(20, b);
  CHECK(xf == xd.cast<float>());
  // Each draw is mean + std * normal(), column by column.
  for (Index j = 0; j < 20; ++j)
    for (Index i = 0; i < 3; ++i) CHECK(xd(i, j) == g.mean()(i) + g.std()(i) * c.normal());
  // Into a block of a larger matrix.
  Matrix<double> big = Matrix<double>::Zero(3, 10);
  Rng d(9);
  g.sample(d, big.middleCols(2, 5));
  CHECK(big.middleCols(2, 5) == xd.leftCols(5));
  CHECK(big.leftCols(2).isZero(0.0));
  CHECK(big.rightCols(3).isZero(0.0));
  // Zero samples are allowed.
  CHECK(g.sample<double>(0, d).cols() == 0);
}

TEST_CASE("Gaussian refuses bad arguments, naming them", "[distribution][gaussian][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(Gaussian(vec({0.0, 0.0}), vec({1.0, 0.0})), InvalidArgument);
  CHECK_THROWS_WITH(Gaussian(vec({0.0, 0.0}), vec({1.0, 0.0})), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(Gaussian(vec({0.0}), vec({-1.0})), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(Gaussian(vec({0.0}), vec({nan})), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(Gaussian(vec({0.0}), vec({inf})), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(Gaussian(vec({nan}), vec({1.0})), Catch::Contains("argument 'mean'"));
  CHECK_THROWS_AS(Gaussian(vec({0.0, 0.0}), vec({1.0})), DimensionMismatch);
  CHECK_THROWS_WITH(Gaussian(vec({0.0, 0.0}), vec({1.0})), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(Gaussian(Vector<double>(), Vector<double>()), Catch::Contains("argument 'mean.size()'"));
  CHECK_THROWS_WITH(Gaussian::standard(0), Catch::Contains("argument 'dim'"));
  CHECK_THROWS_WITH(Gaussian::standard(2, 0.0), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(Gaussian::standard(2, nan), Catch::Contains("argument 'std'"));

  const Gaussian g = Gaussian::standard(2);
  Rng rng(0);
  Matrix<double> wrong(3, 4);
  CHECK_THROWS_AS(g.sample(rng, wrong), DimensionMismatch);
  CHECK_THROWS_WITH(g.sample(rng, wrong), Catch::Contains("argument 'out'"));
  CHECK_THROWS_WITH(g.sample<float>(-1, rng), Catch::Contains("argument 'n'"));
  CHECK_THROWS_AS(g.log_density(wrong), DimensionMismatch);
  CHECK_THROWS_WITH(g.log_density(wrong), Catch::Contains("argument 'x'"));
  Matrix<double> x(2, 4);
  x.setZero();
  Vector<double> out(3);
  CHECK_THROWS_AS(g.log_density(x, out), DimensionMismatch);
  CHECK_THROWS_WITH(g.log_density(x, out), Catch::Contains("argument 'out'"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
